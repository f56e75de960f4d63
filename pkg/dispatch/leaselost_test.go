package dispatch

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Two faults: a replica waits on Wompi's health gate with the batch's
// reservation taken, and loses its lease meanwhile (cut off from Redis past
// it; another replica takes the batch over and posts it). When its patience
// ran out it gave the reservation back, then failed to move the batch's
// record: the account's day no longer counted a batch that was paid. The
// move, fenced by the lease, now comes first.
func TestDeferralWithALostLeaseGivesNothingBack(t *testing.T) {
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.sim.UpdateFaults(func(fl *wompitest.Faults) { fl.Unhealthy = true })
	e := f.engine(func(c *Config) {
		c.RailPatience = 1500 * time.Millisecond
		c.LeaseTTL = 30 * time.Second // no renewal notices the theft first
	})
	b := batch("lease-lost", map[string]int64{"lease-lost-a": 500_000}, "lease-lost-a")
	ctx := context.Background()
	rdb := f.redis.Client()
	stop, _ := f.run(e)
	f.produce(f.topics.Batches, b)
	budgetKey := e.budget.Key(payout.DayIn(f.clock.Now(), bogota).String())
	eventually(t, "the batch's reservation", func() bool {
		n, _ := rdb.HExists(ctx, budgetKey, "res:"+b.BatchID).Result()
		return n
	})
	// Another replica holds the batch now.
	far := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := rdb.HSet(ctx, e.st.batchKey(b.BatchID), "owner", "another-replica", "lease", far).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // past the patience
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := rdb.HExists(ctx, budgetKey, "res:"+b.BatchID).Result(); !ok {
		t.Fatal("a replica that had lost its lease gave the batch's reservation back")
	}
	if n := outcome(e, "deferred"); n != 0 {
		t.Fatalf("deferred %d times by a replica without the lease", n)
	}
}
