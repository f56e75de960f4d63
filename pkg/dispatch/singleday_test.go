package dispatch

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// forbidOne answers 403 to every POST naming id while on: the payee's
// rail refuses it in a way no retry within the batch's patience fixes
// (unavailable at once), so it waits on the deferred topic.
type forbidOne struct {
	id string
	on atomic.Bool
}

func (r *forbidOne) RoundTrip(req *http.Request) (*http.Response, error) {
	return answerPosts(func(req *http.Request, body []byte) *http.Response {
		if r.on.Load() && bytes.Contains(body, []byte(`"`+r.id+`"`)) {
			return jsonAnswer(req, http.StatusForbidden, `{"message":"forbidden","code":"forbidden"}`)
		}
		return nil
	}).RoundTrip(req)
}

// Two faults together: a single-payout batch's first payee is posted just
// before midnight and its rail refuses it for now (it waits on the
// deferred topic); the next payee's POST goes out past midnight, so
// followSingleDay reserves the payees "not posted yet" on the new day:
// without the first payee, whose POST went out on the old day. Its copy
// comes back on the new day, and its reservation (keepHeld) takes the
// smaller one held there as covering it: it is paid on the new day without
// being counted there, and the account pays more than DAILY_LIMIT_CENTS.
func TestSingleDayMoveCountsAPayeePostedBeforeMidnightThatWaits(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, loc, _, tomorrow := beforeMidnight(t, r)
		const limit = 200_000
		timing := func(c *Config) {
			c.SingleConcurrency, c.DailyLimitCents, c.RailPatience, c.LookupEveryPayee = 1, limit, 500*time.Millisecond, true
			c.RetryMax = time.Minute
		}
		b := singleBatch(r, "waits-midnight", 2)
		tr := &forbidOne{id: b.Transactions[0].RequestID}
		tr.on.Store(true)
		e := r.through(t, tr).engine(f, timing)
		var posts atomic.Int32
		e.beforePost = func(string) {
			if posts.Add(1) == 2 { // payee 1's POST: past midnight
				f.clock.Set(tomorrow.StartIn(loc).Add(30 * time.Second))
			}
		}
		bb := b
		if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("batch: %v", err)
		}
		e.beforePost = nil
		if r.sim.Accepted(b.Transactions[0].RequestID) != 0 || r.sim.Accepted(b.Transactions[1].RequestID) != 1 {
			t.Fatal("want payee 1 paid (past midnight) and payee 0 waiting")
		}
		tr.on.Store(false)
		// Another batch of the account on the new day, then the copy.
		other := singleBatch(r, "waits-other", 1)
		for i := range other.Transactions {
			other.Transactions[i].RequestedAt = f.clock.Now()
		}
		ob := other
		if err := e.process(context.Background(), &ob, nil, testLogger()); err != nil {
			t.Fatalf("other batch: %v", err)
		}
		f.clock.Set(tomorrow.StartIn(loc).Add(time.Hour))
		rest := restOf(b, 0)
		if err := e.process(context.Background(), &rest, nil, testLogger()); err != nil {
			t.Fatalf("copy: %v", err)
		}
		paid := paidOf(r, other, b) // every POST that paid went out on tomorrow
		u, err := e.budget.Usage(context.Background(), r.name, tomorrow.String(), b.OriginAccountID)
		if err != nil {
			t.Fatal(err)
		}
		if paid > limit || u.AmountInCents < paid {
			t.Fatalf("paid %d on %s (limit %d), counted %d: a payee posted before midnight that waits was left out of the new day's reservation",
				paid, tomorrow, limit, u.AmountInCents)
		}
	})
}

// A batch whose first payee is paid before midnight and whose second is
// posted after it counts only the second on the new day: the first was
// paid, and counted, on its own day (an account is not held back by money
// it did not spend that day).
func TestSingleBatchCrossingMidnightCountsEachPaidPayeeOnce(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, loc, today, tomorrow := beforeMidnight(t, r)
		e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
		var posts atomic.Int32
		e.beforePost = func(string) {
			if posts.Add(1) == 2 {
				f.clock.Set(tomorrow.StartIn(loc).Add(30 * time.Second))
			}
		}
		b := singleBatch(r, "crossing", 2)
		bb := b
		if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatal(err)
		}
		for day, want := range map[payout.Day]int64{today: b.TotalAmountInCents, tomorrow: b.Transactions[1].AmountInCents} {
			if u, err := e.budget.Usage(context.Background(), r.name, day.String(), b.OriginAccountID); err != nil || u.AmountInCents != want {
				t.Errorf("%s usage %+v %v, want %d", day, u, err, want)
			}
		}
		if paid := paidOf(r, b); paid != b.TotalAmountInCents {
			t.Fatalf("paid %d, want the batch's %d", paid, b.TotalAmountInCents)
		}
	})
}

// beforeMidnight is a one-partition fixture whose clock stands one minute
// before the end of the test's day in rail r's zone: that zone, the day
// and the next one.
func beforeMidnight(t *testing.T, r singleRail) (f *fixture, loc *time.Location, today, tomorrow payout.Day) {
	t.Helper()
	f = newFixture(t, fixtureOpt{partitions: 1})
	loc = rail.Location(r.name)
	today = payout.DayIn(testStart, loc)
	tomorrow = today.Next()
	f.clock.Set(tomorrow.StartIn(loc).Add(-time.Minute))
	return f, loc, today, tomorrow
}
