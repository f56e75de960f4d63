package dispatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// restOf is the copy of b that deferSingle puts on the deferred topic when
// only the payees at positions wait are left: same batch id, next attempt.
func restOf(b payout.Batch, wait ...int) payout.Batch {
	nb := b
	nb.Attempt = b.Attempt + 1
	nb.Transactions, nb.TotalAmountInCents = nil, 0
	for _, i := range wait {
		nb.Transactions = append(nb.Transactions, b.Transactions[i])
		nb.TotalAmountInCents += b.Transactions[i].AmountInCents
	}
	nb.TransactionCount = int32(len(nb.Transactions))
	return nb
}

// paidOf sums the amounts of b's payees the rail accepted.
func paidOf(r singleRail, bs ...payout.Batch) int64 {
	var sum int64
	for _, b := range bs {
		for _, tx := range b.Transactions {
			sum += int64(r.sim.Accepted(tx.RequestID)) * tx.AmountInCents
		}
	}
	return sum
}

// partlyPaid is a two-payee batch of rail r that its first attempt paid in
// part, at 10:00 on the test's day under a daily limit: payee 0 paid, payee
// 1 deferred (its rail down past RailPatience). Its rail is back up when it
// returns; timing configures later engines alike.
type partlyPaid struct {
	f      *fixture
	tr     *refuseOnce
	timing func(*Config)
	b      payout.Batch
	down   string // payee 1's requestId
	loc    *time.Location
	today  payout.Day
}

func payPartly(t *testing.T, r singleRail, prefix string, limit int64) *partlyPaid {
	t.Helper()
	p := &partlyPaid{f: newFixture(t, fixtureOpt{partitions: 1}), loc: rail.Location(r.name)}
	p.today = payout.DayIn(testStart, p.loc)
	p.f.clock.Set(p.today.StartIn(p.loc).Add(10 * time.Hour))
	p.b = singleBatch(r, prefix, 2)
	p.down = p.b.Transactions[1].RequestID
	p.tr = &refuseOnce{refuse: "no-such-request", downID: p.down}
	p.tr.down.Store(true)
	p.timing = func(c *Config) {
		c.RailPatience, c.SingleConcurrency, c.DailyLimitCents = 500*time.Millisecond, 1, limit
	}
	bb := p.b
	if err := r.through(t, p.tr).engine(p.f, p.timing).process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	if r.sim.Accepted(p.b.Transactions[0].RequestID) != 1 || r.sim.Accepted(p.down) != 0 {
		t.Fatalf("first attempt: want payee 0 paid and payee 1 deferred")
	}
	p.tr.down.Store(false)
	return p
}

// Two faults together: a single-payout batch is partly paid on day D (one
// payee paid, the other's rail down past RailPatience: that payee waits on
// the deferred topic), and its copy comes back on day D+1 (the rail's
// retry, or a deferral whose NotBefore is past midnight). The copy skips
// the reservation, because the first attempt's one, of the whole batch,
// still holds: but that one is on D. The payee is paid on D+1 without
// being counted on D+1, so the account pays more than DAILY_LIMIT_CENTS
// on D+1 when another batch has used D+1's limit.
func TestPartlyPaidSingleBatchResumedNextDayCountsOnThatDay(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		const limit = 200_000
		p := payPartly(t, r, "partly", limit)
		f, tr, timing, b, down := p.f, p.tr, p.timing, p.b, p.down
		// The next day: another batch of the account uses the whole
		// day's limit, then the rest of the first batch comes back.
		tomorrow := p.today.Next()
		f.clock.Set(tomorrow.StartIn(p.loc).Add(10 * time.Hour))
		e2 := r.through(t, tr).engine(f, timing)
		other := singleBatch(r, "other", 2)
		for i := range other.Transactions {
			other.Transactions[i].RequestedAt = f.clock.Now()
		}
		ob := other
		if err := e2.process(context.Background(), &ob, nil, testLogger()); err != nil {
			t.Fatalf("other batch: %v", err)
		}
		if paid := paidOf(r, other); paid != limit {
			t.Fatalf("other batch paid %d, want %d (the whole day's limit)", paid, limit)
		}
		rest := restOf(b, 1)
		if err := e2.process(context.Background(), &rest, nil, testLogger()); err != nil {
			t.Fatalf("rest of the first batch: %v", err)
		}
		if paid := paidOf(r, other) + int64(r.sim.Accepted(down))*b.Transactions[1].AmountInCents; paid > limit {
			t.Fatalf("paid %d on %s, above the account's daily limit %d: the rest of a batch partly paid the day before was not counted on its day",
				paid, tomorrow, limit)
		}
		if n := testutil.ToFloat64(e2.m.deferred.WithLabelValues(string(payout.ReasonDailyLimit))); n != 1 {
			t.Fatalf("deferred DAILY_LIMIT %v times, want the rest once", n)
		}
		u, err := e2.budget.Usage(context.Background(), r.name, tomorrow.String(), b.OriginAccountID)
		if err != nil || u.AmountInCents != limit {
			t.Fatalf("%s usage %+v %v, want %d", tomorrow, u, err, limit)
		}
		f.checkLifecycles()
	})
}

// The same partly paid batch resumed on its own day: the first attempt's
// reservation, of the whole batch, covers the rest; it is neither counted
// again nor replaced by the rest's smaller one.
func TestPartlyPaidSingleBatchResumedSameDayHoldsOnce(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		p := payPartly(t, r, "partly-same", 200_000)
		f, tr, timing, b, down, today := p.f, p.tr, p.timing, p.b, p.down, p.today
		f.clock.Set(f.clock.Now().Add(time.Hour))
		e2 := r.through(t, tr).engine(f, timing)
		rest := restOf(b, 1)
		if err := e2.process(context.Background(), &rest, nil, testLogger()); err != nil {
			t.Fatalf("rest: %v", err)
		}
		if r.sim.Accepted(down) != 1 || r.sim.Accepted(b.Transactions[0].RequestID) != 1 {
			t.Fatal("want each payee paid once")
		}
		u, err := e2.budget.Usage(context.Background(), r.name, today.String(), b.OriginAccountID)
		if err != nil || u.AmountInCents != b.TotalAmountInCents || u.Batches != 1 {
			t.Fatalf("%s usage %+v %v, want the whole batch once (%d, 1 batch)", today, u, err, b.TotalAmountInCents)
		}
	})
}

// Two faults together: a single-payout batch is reserved just before
// midnight, and its POSTs go out after it (the wait for an earlier
// attempt's calls, the rate limit over many payees, a retry). The rail
// pays them on the new day, where nothing counted them: another batch then
// gets the new day's whole limit, and the account pays more than
// DAILY_LIMIT_CENTS that day. A Wompi batch moves its reservation to the
// day of its POST (followDay); a single-payout batch must too.
func TestSingleBatchPostedPastMidnightCountsOnTheNewDay(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, loc, today, tomorrow := beforeMidnight(t, r)
		const limit = 200_000
		e := r.engine(f, func(c *Config) { c.SingleConcurrency, c.DailyLimitCents = 1, limit })
		var once sync.Once
		e.beforePost = func(string) {
			once.Do(func() { f.clock.Set(tomorrow.StartIn(loc).Add(30 * time.Second)) })
		}
		b := singleBatch(r, "midnight", 2)
		bb := b
		if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("first batch: %v", err)
		}
		e.beforePost = nil
		if u, err := e.budget.Usage(context.Background(), r.name, tomorrow.String(), b.OriginAccountID); err != nil || u.AmountInCents != b.TotalAmountInCents {
			t.Fatalf("%s usage %+v %v, want the batch posted that day", tomorrow, u, err)
		}
		other := singleBatch(r, "after-midnight", 2)
		ob := other
		if err := e.process(context.Background(), &ob, nil, testLogger()); err != nil {
			t.Fatalf("other batch: %v", err)
		}
		// Every POST above went out on tomorrow.
		if paid := paidOf(r, b, other); paid > limit {
			t.Fatalf("paid %d on %s, above the account's daily limit %d: a batch reserved on %s and posted on %s was not counted on %s",
				paid, tomorrow, limit, today, tomorrow, tomorrow)
		}
		f.checkLifecycles()
	})
}

// The same, when the new day has no room for the batch: no payee is
// posted on it; they wait (DEFERRED DAILY_LIMIT), and nothing is paid.
func TestSingleBatchPostedPastMidnightIntoAFullDayWaits(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, loc, _, tomorrow := beforeMidnight(t, r)
		const limit = 200_000
		e := r.engine(f, func(c *Config) { c.SingleConcurrency, c.DailyLimitCents = 1, limit })
		b := singleBatch(r, "midnight-full", 2)
		if _, err := e.budget.SeedAmount(context.Background(), r.name, tomorrow.String(), b.OriginAccountID, limit-100_000); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		e.beforePost = func(string) {
			once.Do(func() { f.clock.Set(tomorrow.StartIn(loc).Add(30 * time.Second)) })
		}
		bb := b
		if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("batch: %v", err)
		}
		if paid := paidOf(r, b); paid != 0 {
			t.Fatalf("paid %d on %s, whose room was %d", paid, tomorrow, 100_000)
		}
		idx := byStatus(f.statuses())
		for _, tx := range b.Transactions {
			if d := idx[tx.RequestID][payout.StatusDeferred]; len(d) != 1 || *d[0].ReasonCode != string(payout.ReasonDailyLimit) {
				t.Fatalf("%s DEFERRED %+v, want one DAILY_LIMIT", tx.RequestID, d)
			}
		}
		if u, err := e.budget.Usage(context.Background(), r.name, tomorrow.String(), b.OriginAccountID); err != nil || u.AmountInCents != limit-100_000 {
			t.Fatalf("%s usage %+v %v, want the seed only", tomorrow, u, err)
		}
		f.checkLifecycles()
	})
}

// Two faults together: a single-payout batch is partly paid (one payee
// paid, the other deferred), and the attempt that resumes its rest the
// same day crashes after the rest's POST. The rest is read again with its
// record "posting": its reservation must still be the whole batch's. Were
// it replaced by the rest's smaller one, the payee paid first would be
// forgotten and another batch would get its room on the same day.
func TestPartlyPaidSingleBatchCrashOnResumeKeepsItsReservation(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		const limit = 300_000
		p := payPartly(t, r, "partly-crash", limit)
		f, tr, timing, b, today := p.f, p.tr, p.timing, p.b, p.today
		e2 := r.through(t, tr).engine(f, timing)
		e2.afterPost = func(string) error { return errors.New("crash after the rest's POST") }
		rest := restOf(b, 1)
		if err := e2.process(context.Background(), &rest, nil, testLogger()); err == nil {
			t.Fatal("the resuming attempt did not crash")
		}
		e3 := r.through(t, tr).engine(f, timing)
		rest = restOf(b, 1)
		if err := e3.process(context.Background(), &rest, nil, testLogger()); err != nil {
			t.Fatalf("rest read again: %v", err)
		}
		if u, err := e3.budget.Usage(context.Background(), r.name, today.String(), b.OriginAccountID); err != nil || u.AmountInCents != b.TotalAmountInCents {
			t.Fatalf("%s usage %+v %v, want the whole batch's %d: its paid payees were forgotten", today, u, err, b.TotalAmountInCents)
		}
		other := singleBatch(r, "other-crash", 2)
		ob := other
		if err := e3.process(context.Background(), &ob, nil, testLogger()); err != nil {
			t.Fatalf("other batch: %v", err)
		}
		if paid := paidOf(r, b, other); paid > limit {
			t.Fatalf("paid %d on %s, above the account's daily limit %d", paid, today, limit)
		}
		f.checkLifecycles()
	})
}
