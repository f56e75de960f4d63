package dispatch

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
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
	b := batch("lease-lost", map[string]int64{"lease-lost-a": 500_000}, "lease-lost-a")
	ctx := context.Background()
	rdb := f.redis.Client()
	// Another replica takes the batch over as soon as its reservation is
	// written, from the job's own Redis call: a theft the test made after
	// seeing the reservation raced the job, which (its patience, counted
	// from the job's start, spent by slow earlier steps) could defer with
	// its lease intact first, and rightly give the reservation back.
	var budgetKey, batchKey string
	var mu sync.Mutex
	var stolen atomic.Bool
	steal := func() {
		mu.Lock()
		defer mu.Unlock()
		if stolen.Load() || batchKey == "" {
			return
		}
		if ok, _ := rdb.HExists(ctx, budgetKey, "res:"+b.BatchID).Result(); !ok {
			return
		}
		far := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
		if err := rdb.HSet(ctx, batchKey, "owner", "another-replica", "lease", far).Err(); err != nil {
			t.Error(err)
			return
		}
		stolen.Store(true)
	}
	e := f.engine(func(c *Config) {
		c.RailPatience = 1500 * time.Millisecond
		c.LeaseTTL = 30 * time.Second // no renewal notices the theft first
		c.Redis.AddHook(afterEachCommand(steal))
	})
	mu.Lock()
	budgetKey, batchKey = e.budget.Key(payout.DayIn(f.clock.Now(), bogota).String()), e.st.batchKey(b.BatchID)
	mu.Unlock()
	stop, _ := f.run(e)
	f.produce(f.topics.Batches, b)
	eventually(t, "the batch's reservation, and the lease taken by another replica", stolen.Load)
	// Past the patience: the job's fenced move is refused (a restart from
	// the claim, which waits for the other replica's lease).
	eventually(t, "the job's deferral refused by the fence", func() bool { return testutil.ToFloat64(e.m.restarts) >= 1 })
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

// afterEachCommand is a Redis hook that runs fn after each command or
// pipeline of the client it hooks, in the caller's goroutine: what fn
// does is done before the caller's next step.
type afterEachCommand func()

func (h afterEachCommand) DialHook(next redisDialHook) redisDialHook { return next }
func (h afterEachCommand) ProcessHook(next redisProcessHook) redisProcessHook {
	return func(ctx context.Context, cmd redisCmder) error {
		err := next(ctx, cmd)
		h()
		return err
	}
}
func (h afterEachCommand) ProcessPipelineHook(next redisPipelineHook) redisPipelineHook {
	return func(ctx context.Context, cmds []redisCmder) error {
		err := next(ctx, cmds)
		h()
		return err
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
	if c, err := e.st.claim(ctx, "replica-a", "e0", b.BatchID, rail.Wompi); err != nil || c.code != "fresh" {
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
