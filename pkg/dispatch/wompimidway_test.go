package dispatch

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The Wompi twin of TestSingleBatchMidwayBudgetLossDoesNotOverspend. Two
// faults lined up: a Wompi batch (600,000 cents) holds its reservation
// and is about to POST (its rate-limit wait, a health wait, a 5xx retry
// loop: the window can be minutes) when the day's budget alone is lost, the
// epoch surviving: on a Redis Cluster the {budget} slot's master restarts
// empty (no persistence: its stamp goes with it, so no reservation sees a
// changed server), on an evicting Redis the day's hash is evicted. Just
// then another batch of the same account reserves: the day is not seeded,
// GET /limits does not count the first batch (not created yet), and the
// second is granted 600,000 more. The first then posts: 1,200,000 cents
// on a day limited to 1,000,000. SmartFastPay's POSTs check their
// reservation is still held (followSingleDay); Wompi's did not (stillHeld).
func TestWompiBatchBudgetLostBeforeItsPostDoesNotOverspend(t *testing.T) {
	eachBudgetLossAlone(t, wompiMidwayBudgetLoss)
}

func wompiMidwayBudgetLoss(t *testing.T, on func(*fixture) (redis.UniversalClient, string)) {
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	rdb, prefix := on(f)
	ctx := context.Background()
	const limit = 1_000_000
	cfg := func(c *Config) {
		c.DailyLimitCents = limit
		if rdb != nil {
			c.Redis, c.Prefix = rdb, prefix
		}
	}
	first := batch("wmidway-1", map[string]int64{"wmidway-a": 600_000}, "wmidway-a")
	second := batch("wmidway-2", map[string]int64{"wmidway-b": 600_000}, "wmidway-b")
	e := f.engine(cfg)
	e2 := f.engine(cfg)
	e.checkEviction(ctx)
	e2.checkEviction(ctx)
	today := payout.DayIn(f.clock.Now(), bogota).String()
	var hooked atomic.Int32
	var secondErr error
	e.beforePost = func(batchID string) {
		if batchID != first.BatchID || hooked.Add(1) != 1 {
			return
		}
		// The first batch holds its reservation, its POST not sent: the
		// day's budget (and, on a master restarted empty, its stamp) is
		// lost.
		if err := e.st.rdb.Del(ctx, e.budget.Key(today)).Err(); err != nil {
			t.Error(err)
		}
		b := second
		secondErr = e2.process(ctx, &b, nil, testLogger())
	}
	b := first
	err := e.process(ctx, &b, nil, testLogger())
	if secondErr != nil {
		t.Fatalf("second batch: %v", secondErr)
	}
	led := f.sim.BatchLedger()
	paid := int64(0)
	if led[first.BatchID].Accepted > 0 {
		paid += first.TotalAmountInCents
	}
	if led[second.BatchID].Accepted > 0 {
		paid += second.TotalAmountInCents
	}
	if paid > limit {
		t.Fatalf("paid %d on %s, above the account's daily limit %d: the day's budget was lost while a Wompi batch held its reservation before its POST, and the POST went out counted nowhere (first batch: %v)",
			paid, today, limit, err)
	}
	if n := outcome(e, "deferred"); paid == second.TotalAmountInCents && n != 1 {
		t.Fatalf("the first batch deferred %d times, want 1 (DAILY_LIMIT)", n)
	}
	if hooked.Load() < 1 {
		t.Fatal("the first batch never reached its POST")
	}
}
