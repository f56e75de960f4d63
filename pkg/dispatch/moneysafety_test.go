package dispatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Regression tests for the five sequences of issue #14, each of which paid a
// payee twice. Every test ends on the simulator's ledger, which counts each
// acceptance of a reference.

// (1) The first POST creates the payout and its answer is lost; every later
// attempt meets a 401 (a rotated API key) while the injected clock runs past
// Wompi's 24 h key lifetime. No POST may go out with a key that may have
// expired: past KeyMaxAge the dispatcher reconciles by reference and adopts
// the payout.
func TestKeyNeverOutlivesItsLifetime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	f.tap.onPost = func(n int) {
		if n >= 2 {
			f.clock.Advance(3 * time.Hour)
		}
	}
	f.tap.fault = func(n int) fault {
		switch {
		case n == 1:
			return faultCommitTimeout
		case n <= 10: // 27 h of 401s on the injected clock
			return fault401
		}
		return faultNone
	}
	e := f.engine(func(c *Config) { c.HTTPTimeout = 500 * time.Millisecond })
	b := simpleBatch("keyage", 3)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	f.noDoublePayment()
	f.checkSubmitted(b)
	if n := testutil.ToFloat64(e.m.postBlocked.WithLabelValues("401")); n < 1 {
		t.Fatalf("401 answers counted %v, want them visible", n)
	}
	for _, p := range f.tap.snapshot() {
		if p.key != b.BatchID {
			t.Fatalf("POST with key %q", p.key)
		}
	}
}

// (2) A POST times out after Wompi created the payout; the retry meets a
// validation refusal (the dispersion date is no longer valid). The batch is
// paid: it must end SUBMITTED, its requestIds stay in the duplicate index,
// and a republished request is not paid again.
func TestLateRejectionAfterLostAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	f.tap.fault = func(n int) fault {
		switch n {
		case 1:
			return faultCommitTimeout
		case 2:
			return fault400
		}
		return faultNone
	}
	e := f.engine(func(c *Config) { c.HTTPTimeout = 500 * time.Millisecond })
	a := simpleBatch("late", 2)
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a handled", func() bool { return outcome(e, "submitted")+outcome(e, "rejected") == 1 })
	again := batch("late-again", map[string]int64{a.Transactions[0].RequestID: 100_000}, a.Transactions[0].RequestID)
	f.produce(f.topics.Batches, again)
	eventually(t, "republished batch handled", func() bool {
		return outcome(e, "submitted")+outcome(e, "rejected")+outcome(e, "duplicate") == 2
	})
	_ = stop()
	f.noDoublePayment()
	if n := outcome(e, "rejected"); n != 0 {
		t.Fatalf("%d batches REJECTED: a refusal after a lost answer was taken at its word", n)
	}
	f.checkSubmitted(a)
	for _, s := range f.statuses() {
		if s.Status == payout.StatusRejected && s.RequestID != a.Transactions[0].RequestID {
			t.Fatalf("unexpected REJECTED %+v", s)
		}
	}
}

// (4) One requestId published under two origin accounts is paid once.
func TestRequestIDUniqueAcrossAccounts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	a := batch("acct-a", map[string]int64{"xacct-1": 100_000}, "xacct-1")
	b := batch("acct-b", map[string]int64{"xacct-1": 100_000}, "xacct-1")
	b.OriginAccountID = wompitest.AccountSecondary
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
	f.produce(f.topics.Batches, b)
	eventually(t, "batch b handled", func() bool { return outcome(e, "submitted")+outcome(e, "duplicate") == 2 })
	_ = stop()
	f.noDoublePayment()
	if le, _ := f.sim.LedgerEntry("xacct-1"); le.Accepted != 1 {
		t.Fatalf("xacct-1 accepted %d times across accounts, want 1", le.Accepted)
	}
}

// (5) A Redis loss never narrows the uniqueness window: a requestId paid
// five days before the loss (inside the documented window) is still a
// duplicate after the rebuild.
func TestDedupeWindowSurvivesRedisLoss(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	e := f.engine(nil)
	a := batch("window-a", map[string]int64{"win-1": 100_000}, "win-1")
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if e.cfg.DedupeWindow < 5*24*time.Hour {
		t.Fatalf("default window %v is shorter than this test's 5 days", e.cfg.DedupeWindow)
	}
	f.clock.Advance(5 * 24 * time.Hour)
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e2 := f.engine(nil)
	b := batch("window-b", map[string]int64{"win-1": 100_000}, "win-1")
	f.produce(f.topics.Batches, b)
	stop2, _ := f.run(e2)
	eventually(t, "batch b handled", func() bool { return outcome(e2, "submitted")+outcome(e2, "duplicate") == 1 })
	_ = stop2()
	f.noDoublePayment()
	if le, _ := f.sim.LedgerEntry("win-1"); le.Accepted != 1 {
		t.Fatalf("win-1 accepted %d times, want 1", le.Accepted)
	}
}

// (3) Two workers hold epoch e0 when Redis is flushed. Nothing they do
// under e0 may go through afterwards: not a claim, not a dedupe against the
// empty index, not a move to "posting"; and while a new epoch is still
// rebuilding, not a claim under it either. (The old code let one worker
// write e0 back as the account's marker, and the other then claimed and
// deduped against an empty index.)
func TestStaleEpochCannotClaimOrDedupe(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	e := f.engine(nil)
	ctx := context.Background()
	c, err := e.st.claim(ctx, "w1", "e0", "b-held", rail.Wompi)
	if err != nil || c.code != "fresh" {
		t.Fatalf("claim before the flush: %+v %v", c, err)
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := e.st.claim(ctx, "w2", "e0", "b-other", rail.Wompi); err != nil || c.code != "noepoch" {
		t.Fatalf("claim under the dead epoch after the flush: %+v %v, want noepoch", c, err)
	}
	if _, _, _, _, err := e.st.dedupe(ctx, "w1", "e0", "b-held", rail.Wompi, []string{"r-1"}, []byte{modeKeep}); !errors.Is(err, errStale) {
		t.Fatalf("dedupe under the dead epoch: %v, want errStale", err)
	}
	if _, err := e.st.transition(ctx, "w1", "e0", "b-held", []string{stateClaimed}, statePosting); !errors.Is(err, errStale) {
		t.Fatalf("move to posting under the dead epoch: %v, want errStale", err)
	}
	// A recovery has written e1 but not finished its rebuild.
	if err := f.redis.Client().HSet(ctx, f.redis.Prefix()+"{dispatch}:epoch", "id", "e1", "state", "rebuilding", "layout", epochLayout,
		"server", redisRunID(t, f.redis.Client())).Err(); err != nil {
		t.Fatal(err)
	}
	if c, err := e.st.claim(ctx, "w2", "e1", "b-other", rail.Wompi); err != nil || c.code != "noepoch" {
		t.Fatalf("claim while e1 rebuilds: %+v %v, want noepoch", c, err)
	}
	// An epoch hash of the old layout (per-account index) is not ready.
	if err := f.redis.Client().HSet(ctx, f.redis.Prefix()+"{dispatch}:epoch", "state", "ready", "layout", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ready, _ := e.st.epoch(ctx); ready {
		t.Fatal("an epoch of the old key layout counts as ready")
	}
	if n, _ := f.redis.Client().Exists(ctx, e.st.reqKey("r-1")).Result(); n != 0 {
		t.Fatal("a refused dedupe wrote the index")
	}
}

// The dispatcher's PENDING for a batch and the tracker's carry one eventId:
// payout.EventID("batch", batchId, status, payoutId), as in pkg/track.
func TestBatchPendingEventIDIsTheTrackers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("pending-id", 2)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	var n int
	for _, bs := range f.batchStatuses() {
		if bs.Status != payout.BatchPending {
			continue
		}
		n++
		if bs.PayoutID == nil || bs.EventID != payout.EventID("batch", b.BatchID, string(payout.BatchPending), *bs.PayoutID) {
			t.Fatalf("PENDING eventId %s is not the tracker's scheme", bs.EventID)
		}
	}
	if n != 1 {
		t.Fatalf("%d PENDING events, want 1", n)
	}
}

// After a 409 EXC_022 whose payout never shows up by reference, the batch is
// moved aside (deferred PAYOUT_NOT_VISIBLE) instead of stalling its
// partition: the batch behind it is paid meanwhile; once due, the moved
// batch is looked up again, then posted once.
func TestInvisiblePayoutMovesBatchAside(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	var inject atomic.Bool
	inject.Store(true)
	f.tap.fault = func(n int) fault {
		if inject.Load() && n == 1 {
			return fault409
		}
		return faultNone
	}
	e := f.engine(func(c *Config) { c.LookupPatience = 200 * time.Millisecond })
	stuck, next := simpleBatch("invisible", 2), simpleBatch("behind", 2)
	f.produce(f.topics.Batches, stuck, next)
	stop, _ := f.run(e)
	eventually(t, "the batch behind is paid", func() bool { return f.sim.BatchLedger()[next.BatchID].Accepted == 1 })
	if n := testutil.ToFloat64(e.m.deferred.WithLabelValues(string(payout.ReasonPayoutNotVisible))); n != 1 {
		t.Fatalf("deferred PAYOUT_NOT_VISIBLE %v, want 1", n)
	}
	found := testutil.ToFloat64(e.m.reconciled.WithLabelValues("false"))
	f.clock.Advance(time.Hour)
	eventually(t, "the moved batch is paid", func() bool { return outcome(e, "submitted") == 2 })
	_ = stop()
	if testutil.ToFloat64(e.m.reconciled.WithLabelValues("false")) <= found {
		t.Fatal("the moved batch was posted again without a lookup by reference")
	}
	f.noDoublePayment()
	f.checkSubmitted(stuck)
}

// The very first POST is created, and the answer the dispatcher reads is a
// 400: what Go's transport returns when it replayed the POST (it does so for
// a request carrying an Idempotency-Key on a broken reused connection) and
// the replay was refused. Even a first attempt's refusal is looked up
// before it is taken: the batch ends SUBMITTED, never REJECTED.
func TestFirstRefusalIsLookedUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return faultCommit400
		}
		return faultNone
	}
	e := f.engine(nil)
	b := simpleBatch("replay", 2)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool { return outcome(e, "submitted")+outcome(e, "rejected") == 1 })
	_ = stop()
	if outcome(e, "rejected") != 0 {
		t.Fatal("a paid batch was REJECTED on its first refusal")
	}
	f.checkSubmitted(b)
	f.noDoublePayment()
}
