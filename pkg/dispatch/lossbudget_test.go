package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Two faults on one day: an account of a single-payout rail is paid most
// of its daily limit, then Redis loses the day's budget. The rail
// publishes no figure of what was paid, so the budget restarted at 0 and
// the account was paid its limit a second time. The recovery's listing
// now counts what the rail paid that day against every account of the
// rail; the next batch waits for the next day.
//
// "listed early": a batch of the old epoch listed the day and seeded the
// account between the loss and the recovery, before the POSTs in flight
// at the loss had landed (here: a figure of 0). The recovery, after its
// grace, adds what it lists to the account seeded since.
func TestSingleRailBudgetAfterARedisLossCountsWhatTheRailListed(t *testing.T) {
	t.Parallel()
	for i, n := range []rail.Name{rail.SmartFastPay, rail.WEpayout} {
		for _, early := range []bool{false, true} {
			name := string(n)
			if early {
				name += "/listed early"
			}
			t.Run(name, func(t *testing.T) { budgetAfterALoss(t, i, early) })
		}
	}
}

func budgetAfterALoss(t *testing.T, i int, early bool) {
	// The simulator's clock is the fixture's: it dates each payout.
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[i](t)
	loc := rail.Location(r.name)
	today := tenOClock(f, r)
	const limit = 250_000
	timing := func(c *Config) { c.DailyLimitCents = limit }
	first := singleBatch(r, "before", 2) // 200,000 cents
	b := first
	if err := r.engine(f, timing).process(context.Background(), &b, nil, testLogger()); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if paid := paidOf(r, first); paid != 200_000 {
		t.Fatalf("first batch paid %d, want 200000", paid)
	}
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e2 := r.engine(f, timing)
	if early {
		if _, err := e2.budget.NoteListed(context.Background(), r.name, today.String(), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e2.budget.SeedAmount(context.Background(), r.name, today.String(), first.OriginAccountID, 0); err != nil {
			t.Fatal(err)
		}
	}
	second := singleBatch(r, "after", 2)
	b = second
	if err := e2.process(context.Background(), &b, nil, testLogger()); err != nil {
		t.Fatalf("second batch: %v", err)
	}
	if n := testutil.ToFloat64(e2.m.recoveries); n != 1 {
		t.Fatalf("recoveries %v, want 1", n)
	}
	if paid := paidOf(r, first, second); paid > limit {
		t.Fatalf("paid %d on %s, above the account's daily limit %d: the budget restarted at 0 after the Redis loss",
			paid, today, limit)
	}
	if n := testutil.ToFloat64(e2.m.deferred.WithLabelValues(string(payout.ReasonDailyLimit))); n != 1 {
		t.Fatalf("deferred DAILY_LIMIT %v times, want the second batch once", n)
	}
	u, err := e2.budget.Usage(context.Background(), r.name, today.String(), first.OriginAccountID)
	if err != nil || u.AmountInCents != 200_000 {
		t.Fatalf("%s usage %+v %v, want the 200000 the rail listed", today, u, err)
	}
	// The day after, the account starts afresh: what was listed
	// counts on its own day only.
	f.clock.Set(today.Next().StartIn(loc).Add(10 * time.Hour))
	third := singleBatch(r, "nextday", 2)
	b = third
	if err := r.engine(f, timing).process(context.Background(), &b, nil, testLogger()); err != nil {
		t.Fatalf("next day's batch: %v", err)
	}
	if paid := paidOf(r, third); paid != 200_000 {
		t.Fatalf("next day's batch paid %d, want 200000", paid)
	}
}

// What a recovery's listing counts: the payouts of its own day and later,
// each on the rail's day of its creation; one without a creation time on
// the recovery's day (never too little); the earlier days', over, not at
// all.
func TestListedSpendCountsTheRecoverysDayAndLater(t *testing.T) {
	t.Parallel()
	loc := rail.Location(rail.WEpayout)
	today := payout.DayIn(testStart, loc)
	at := today.StartIn(loc).Add(23*time.Hour + 59*time.Minute)
	s := newListedSpend(at)
	for _, p := range []rail.Payout{
		{AmountInCents: 100, CreatedAt: at.Add(-time.Hour)},
		{AmountInCents: 20, CreatedAt: at.Add(2 * time.Minute)}, // past midnight
		{AmountInCents: 3}, // no creation time
		{AmountInCents: 4000, CreatedAt: today.StartIn(loc).Add(-time.Second)},
		{AmountInCents: -50, CreatedAt: at},
	} {
		s.add(rail.WEpayout, p)
	}
	want := map[payout.Day]int64{today: 103, today.Next(): 20}
	if got := s.days[rail.WEpayout]; len(got) != len(want) || got[today] != want[today] || got[today.Next()] != want[today.Next()] {
		t.Fatalf("listed %v, want %v", got, want)
	}
	var none *listedSpend
	none.add(rail.WEpayout, rail.Payout{AmountInCents: 1}) // the first start's rebuild counts nothing
}

// tenOClock puts the fixture's clock at 10:00 of the test's day on r's
// business calendar and returns that day.
func tenOClock(f *fixture, r singleRail) payout.Day {
	loc := rail.Location(r.name)
	today := payout.DayIn(testStart, loc)
	f.clock.Set(today.StartIn(loc).Add(10 * time.Hour))
	return today
}

// Two faults: an account of a single-payout rail is paid most of its daily
// limit, then only the budget's keys are lost. On a Redis Cluster the
// budgets' hash tag {budget} (slot 11677) and the dispatcher's {dispatch}
// (slot 5248) sit on different masters of the default three-master layout:
// the budgets' master restarts without persistence (or fails over to a
// replica that missed the writes), the epoch on the other master survives,
// stamped with that master's run id. No recovery runs: the budget was
// seeded at 0 and the account paid its limit a second time. The day's
// first seed now lists the rail's day first (listDay).
func TestSingleRailBudgetLostAloneCountsWhatTheRailListed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[0](t)
	today := tenOClock(f, r)
	ctx := context.Background()
	const limit = 250_000
	timing := func(c *Config) { c.DailyLimitCents = limit }
	first := singleBatch(r, "slot-before", 2) // 200,000 cents
	b := first
	e := r.engine(f, timing)
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if paid := paidOf(r, first); paid != 200_000 {
		t.Fatalf("first batch paid %d, want 200000", paid)
	}
	// The {budget} slot's master comes back empty; {dispatch}'s keeps its
	// keys (the epoch among them).
	if err := f.redis.Client().Del(ctx, e.budget.Key(today.String())).Err(); err != nil {
		t.Fatal(err)
	}
	e2 := r.engine(f, timing)
	second := singleBatch(r, "slot-after", 2)
	b = second
	if err := e2.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("second batch: %v", err)
	}
	if paid := paidOf(r, first, second); paid > limit {
		t.Fatalf("paid %d on %s, above the account's daily limit %d: the budget's keys were lost without the epoch, no recovery noted what the rail listed (recoveries %v)",
			paid, today, limit, testutil.ToFloat64(e2.m.recoveries))
	}
}

// Two faults: a Redis loss during a rolling upgrade from a dispatcher of a
// version that writes no start record. The new dispatcher's recovery is a
// first start (no start record but its own, no committed offset, the rails
// list nothing yet), so it lists without a grace and notes nothing. The
// earlier version's POSTs, in flight at the loss (their reservation went
// with Redis), land within the grace; completeEpoch lists them after it
// and indexes them, but did not note their amount, and the account was
// paid past its limit on that day. The first seed, after the grace, now
// lists them (listDay).
func TestFirstStartLateLandingCountsOnTheBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[0](t)
	today := tenOClock(f, r)
	ctx := context.Background()
	const limit = 250_000
	timing := func(c *Config) { c.DailyLimitCents = limit }
	e := r.engine(f, timing)
	epoch, _, err := e.ensureEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1", n)
	}
	// The earlier version's POSTs land within the grace: 200,000 cents of
	// the same account.
	old := singleBatch(r, "oldver", 2)
	for i := range old.Transactions {
		if _, err := r.client.Create(ctx, singleRequest(r.name, &old.Transactions[i])); err != nil {
			t.Fatal(err)
		}
	}
	// The grace is over (as TestCompleteEpochWaitsForTheGrace ends it).
	if err := f.redis.Client().Del(ctx, e.st.graceKey()).Err(); err != nil {
		t.Fatal(err)
	}
	e.completeEpoch(ctx, epoch)
	if c := f.epochField("complete"); c != epoch {
		t.Fatalf("epoch complete %q, want %q", c, epoch)
	}
	second := singleBatch(r, "newver", 2)
	b := second
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("second batch: %v", err)
	}
	if paid := paidOf(r, old, second); paid > limit {
		t.Fatalf("paid %d on %s, above the account's daily limit %d: what completeEpoch listed (landed within the first start's grace) was never noted",
			paid, today, limit)
	}
}

// oddCreatedAt lists what its rail lists, plus one payout of its own.
type oddCreatedAt struct {
	rail.SinglePayouts
	odd rail.Payout
}

func (o oddCreatedAt) List(ctx context.Context, f rail.ListFilter) iter.Seq2[rail.Payout, error] {
	return func(yield func(rail.Payout, error) bool) {
		for p, err := range o.SinglePayouts.List(ctx, f) {
			if !yield(p, err) || err != nil {
				return
			}
		}
		yield(o.odd, nil)
	}
}

// Two faults: a Redis loss, and a rail listing one payout whose creation
// time reads as a year past 9999 (SmartFastPay's client takes a numeric
// created_at as milliseconds; one sent in microseconds is some 50,000
// years ahead). listedSpend files it on that day, "55990-..." say,
// NoteListed refused the day as not YYYY-MM-DD, and the recovery failed,
// again after every grace wait, for as long as the payout was in the
// dedupe window: no epoch ready, every partition stalled. Such a time now
// counts on the recovery's day.
func TestOddCreationTimeDoesNotStallTheRecovery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[0](t)
	tenOClock(f, r)
	odd := rail.Payout{ID: "not-ours-1", AmountInCents: 5_000,
		CreatedAt: time.UnixMilli(f.clock.Now().UnixMicro())}
	e := r.engine(f, func(c *Config) {
		c.Singles = map[rail.Name]rail.SinglePayouts{r.name: oddCreatedAt{SinglePayouts: r.client, odd: odd}}
	})
	spent := newListedSpend(f.clock.Now())
	spent.add(r.name, odd)
	if err := e.noteListed(context.Background(), spent); err != nil {
		t.Errorf("noteListed of a payout created %s: %v", odd.CreatedAt.Format(time.DateOnly), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*e.recoveryWait()+5*time.Second)
	defer cancel()
	if _, _, err := e.ensureEpoch(ctx); err != nil {
		t.Fatalf("no ready epoch after %d recoveries: %v (every partition waits)", int(testutil.ToFloat64(e.m.recoveries)), err)
	}
}

// failingList is a rail whose listing always fails; it counts the calls
// made under each caller's ctx tag.
type failingList struct {
	rail.SinglePayouts
	mu    sync.Mutex
	calls map[string]int
}

type callerKey struct{}

func (l *failingList) List(ctx context.Context, _ rail.ListFilter) iter.Seq2[rail.Payout, error] {
	return func(yield func(rail.Payout, error) bool) {
		l.mu.Lock()
		tag, _ := ctx.Value(callerKey{}).(string)
		l.calls[tag]++
		l.mu.Unlock()
		yield(rail.Payout{}, &rail.Error{Rail: rail.SmartFastPay, Op: "list", Class: rail.Retryable, Message: "503"})
	}
}

// While a day's listing keeps failing, the batches that waited for it end
// with it (errPatience: they wait on the deferred topic) instead of each
// listing in turn for RailPatience more; a batch that comes after the
// failure lists again.
func TestBatchesWaitingForAFailedDayListingEndWithIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	r := singleRails(t)[0](t)
	l := &failingList{SinglePayouts: r.client, calls: map[string]int{}}
	e := r.engine(f, func(c *Config) {
		c.Singles = map[rail.Name]rail.SinglePayouts{r.name: l}
		c.RailPatience = 400 * time.Millisecond
	})
	day := payout.DayIn(f.clock.Now(), rail.Location(r.name))
	tagged := func(tag string) context.Context { return context.WithValue(context.Background(), callerKey{}, tag) }
	errs := make(chan error, 1)
	go func() { errs <- e.listDay(tagged("first"), r.name, day) }()
	eventually(t, "the first listing started", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.calls["first"] > 0 })
	if err := e.listDay(tagged("waiter"), r.name, day); !errors.Is(err, errPatience) {
		t.Fatalf("the waiter: %v, want errPatience", err)
	}
	if err := <-errs; !errors.Is(err, errPatience) {
		t.Fatalf("the first: %v, want errPatience", err)
	}
	if err := e.listDay(tagged("later"), r.name, day); !errors.Is(err, errPatience) {
		t.Fatalf("a later batch: %v, want errPatience", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls["waiter"] != 0 || l.calls["later"] == 0 {
		t.Fatalf("listing calls %v: want none from the batch that waited for the failed listing, some from the later one", l.calls)
	}
}

// downAll answers 503 to every call while on, and otherwise defers to fb.
type downAll struct {
	fb   *forbidOne
	down atomic.Bool
}

func (d *downAll) RoundTrip(req *http.Request) (*http.Response, error) {
	if d.down.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"message":"down","code":"down"}`)), Request: req}, nil
	}
	return d.fb.RoundTrip(req)
}

// A single-payout batch partly posted before midnight waits (one payee
// refused for now); its copy is the rail's first batch of the new day, and
// the rail is down. The day's listing (listDay) fails past RailPatience:
// the copy, which an earlier attempt may have posted, waits on the
// deferred topic again (RAIL_UNAVAILABLE), as it does when the day was
// listed before and its lookups fail. A review found it returned the
// error instead, and the worker retried it in place: the partition
// stalled for as long as the rail was down.
func TestCopyOnANewDayWithItsRailDownWaits(t *testing.T) {
	t.Parallel()
	for _, listed := range []bool{false, true} {
		for _, mk := range singleRails(t) {
			r := mk(t)
			t.Run(fmt.Sprintf("%s/day listed=%v", r.name, listed), func(t *testing.T) {
				f, loc, _, tomorrow := beforeMidnight(t, r)
				timing := func(c *Config) {
					c.SingleConcurrency, c.RailPatience, c.LookupEveryPayee = 1, 300*time.Millisecond, true
					c.RetryMax = 100 * time.Millisecond
				}
				b := singleBatch(r, "r23", 2)
				tr := &downAll{fb: &forbidOne{id: b.Transactions[0].RequestID}}
				tr.fb.on.Store(true)
				e := r.through(t, tr).engine(f, timing)
				bb := b
				if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
					t.Fatalf("batch: %v", err)
				}
				if r.sim.Accepted(b.Transactions[0].RequestID) != 0 || r.sim.Accepted(b.Transactions[1].RequestID) != 1 {
					t.Fatal("want payee 1 paid and payee 0 waiting")
				}
				tr.fb.on.Store(false)
				tr.down.Store(true)
				f.clock.Set(tomorrow.StartIn(loc).Add(time.Hour))
				if listed {
					if _, err := e.budget.NoteListed(context.Background(), r.name, tomorrow.String(), 0); err != nil {
						t.Fatal(err)
					}
				}
				rest := restOf(b, 0)
				before := testutil.ToFloat64(e.m.deferred.WithLabelValues(string(rail.ReasonRailUnavailable)))
				if err := e.process(context.Background(), &rest, nil, testLogger()); err != nil {
					t.Fatalf("copy with the rail down on a new day: %v (the worker retries it in place: the partition stalls until the rail answers)", err)
				}
				if n := testutil.ToFloat64(e.m.deferred.WithLabelValues(string(rail.ReasonRailUnavailable))) - before; n != 1 {
					t.Fatalf("deferred RAIL_UNAVAILABLE %v times, want the copy once", n)
				}
				if r.sim.Accepted(b.Transactions[0].RequestID) != 0 || r.sim.Accepted(b.Transactions[1].RequestID) != 1 {
					t.Fatal("want payee 1 paid once and payee 0 still waiting")
				}
			})
		}
	}
}
