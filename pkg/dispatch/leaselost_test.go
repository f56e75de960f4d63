package dispatch

import (
	"context"
	"errors"
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
	t.Parallel()
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

// Two faults: a replica claims a batch and is cut off from Redis past its
// lease; another replica takes the batch over, screens one request away as
// a duplicate, reserves the rest and posts it. When the first reaches Redis
// again, its reservation (every request) conflicts with the other's. It
// gave the other's reservation back and took its own: the day counted the
// batch at an amount that was not paid. The lease is now proved first;
// the replica that holds it still replaces its own.
func TestReservationConflictWithALostLeaseReplacesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	b := simpleBatch("conflict-lost", 2)
	ctx := context.Background()
	rdb := f.redis.Client()
	if c, err := e.st.claim(ctx, "replica-a", "e0", b.BatchID); err != nil || c.code != "fresh" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	newJob := func(owner string, keep ...int) *job {
		j := &job{e: e, b: &b, log: testLogger(), soft: ctx, hard: ctx, stop: ctx, owner: owner, epoch: "e0",
			acct: b.OriginAccountID, keep: keep}
		j.res = newReservation(&b, j.acct, j.keptAmount(), e.now())
		return j
	}
	first := newJob("replica-a", 0, 1)
	far := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := rdb.HSet(ctx, e.st.batchKey(b.BatchID), "owner", "replica-b", "lease", far).Err(); err != nil {
		t.Fatal(err)
	}
	if g, err := newJob("replica-b", 1).reserve(); err != nil || !g.Granted {
		t.Fatalf("the other replica's reservation: %+v %v", g, err)
	}
	budgetKey := e.budget.Key(first.res.Day)
	field := "res:" + b.BatchID
	theirs, err := rdb.HGet(ctx, budgetKey, field).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, reserveErr := first.reserve()
	if now, err := rdb.HGet(ctx, budgetKey, field).Result(); err != nil || now != theirs {
		t.Fatalf("the batch's reservation is %q (%v), was the other replica's %q: replaced by a replica without the lease", now, err, theirs)
	}
	if !errors.Is(reserveErr, errStale) {
		t.Fatalf("reserve without the lease: %v, want the lease refused", reserveErr)
	}
	// The replica that holds the lease replaces its own reservation.
	again := newJob("replica-b", 0, 1)
	if g, err := again.reserve(); err != nil || !g.Granted {
		t.Fatalf("the lease holder's new reservation: %+v %v", g, err)
	}
	if now, _ := rdb.HGet(ctx, budgetKey, field).Result(); now == theirs {
		t.Fatalf("the lease holder's reservation was not replaced: %q", now)
	}
}
