package dispatch

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Two faults: a batch our daily budget deferred (its record "deferred",
// no firstPostAt) is posted the next day and Wompi accepts it; then Redis
// comes back from a snapshot older than that attempt's writes (or fails
// over to a replica that missed them), with the record as the deferral
// left it. The recovery runs, but the retry resumed the old record, which
// asked for no lookup: the batch was posted again. A record last claimed
// under an earlier epoch now proves nothing, and the batch is looked up by
// reference before any POST.
func TestStaleRecordAfterASnapshotRestoreIsLookedUp(t *testing.T) {
	t.Parallel()
	t.Run("a rail that does not deduplicate", func(t *testing.T) {
		// Wompi's idempotency keys live a nanosecond of the simulator's
		// clock, which each POST moves on: only the lookup stops a second
		// payout.
		f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1, sim: wompitest.Config{IdempotencyTTL: time.Nanosecond}})
		f.tap.onPost = func(int) { f.clock.Advance(time.Millisecond) }
		staleAfterRestore(t, f, 400_000, func(e *Engine) {
			f.clock.Set(payout.DayIn(testStart, bogota).Next().StartIn(bogota).Add(time.Minute))
		})
	})
	t.Run("past Wompi's key lifetime", func(t *testing.T) {
		// After the loss the day's budget is seeded from Wompi, whose
		// figure holds the landed POST: the batch's own reservation is
		// denied, and it is deferred a day, past its idempotency key.
		f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
		staleAfterRestore(t, f, 600_000, func(e *Engine) {
			day1 := payout.DayIn(testStart, bogota).Next().StartIn(bogota)
			f.clock.Set(day1.Add(time.Minute))
			eventually(t, "the batch handled after the loss", func() bool {
				return outcome(e, "deferred") == 2 || outcome(e, "submitted") == 2
			})
			f.clock.Set(payout.DayIn(day1, bogota).Next().StartIn(bogota).Add(2 * time.Minute))
		})
	})
}

// staleAfterRestore pays a batch of 700,000 cents against a daily limit of
// 1,000,000, then one of amount, which is deferred to the next day; its
// record as the deferral left it is restored with an older epoch while its
// next day's POST is being sent, and then moves the clock on. Wompi must
// have accepted the second batch once.
func staleAfterRestore(t *testing.T, f *fixture, amount int64, then func(*Engine)) {
	e := f.engine(func(c *Config) { c.DailyLimitCents = 1_000_000 })
	b1 := batch("stale-1", map[string]int64{"stale-a": 700_000}, "stale-a")
	b2 := batch("stale-2", map[string]int64{"stale-b": amount}, "stale-b")
	f.produce(f.topics.Batches, b1)
	stop, _ := f.run(e)
	eventually(t, "the first batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	f.produce(f.topics.Batches, b2)
	eventually(t, "the second batch deferred", func() bool { return outcome(e, "deferred") == 1 })
	ctx := context.Background()
	rec := e.st.batchKey(b2.BatchID)
	var dump string
	eventually(t, "the deferral's record", func() bool {
		st, _ := f.redis.Client().HGet(ctx, rec, "state").Result()
		return st == stateDeferred
	})
	dump, err := f.redis.Client().Dump(ctx, rec).Result()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	e.whileSending = func(id string) {
		if id != b2.BatchID {
			return
		}
		once.Do(func() {
			// Redis restarts from a snapshot older than the attempt.
			f.restartKeepingEpoch()
			if err := f.redis.Client().Restore(ctx, rec, 0, dump).Err(); err != nil {
				t.Error(err)
			}
		})
	}
	then(e)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && f.sim.BatchLedger()[b2.BatchID].Accepted < 2 && outcome(e, "submitted") < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a second POST would land by now
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := f.sim.BatchLedger()[b2.BatchID].Accepted; n != 1 {
		t.Fatalf("the second batch accepted %d times by Wompi, want 1", n)
	}
	if n := outcome(e, "submitted"); n != 2 {
		t.Fatalf("%d batches submitted, want 2", n)
	}
}

// A partial loss that keeps the day's budget but takes its last
// reservations (here the budget as it was before the day's second batch,
// and nothing else): the day still reads as seeded, so GET /limits is not
// asked again. The recovery raises each seeded account to what Wompi
// lists as paid from it on the day; without that, the third batch was paid
// past the account's daily limit.
func TestPartialLossRaisesWompiBudgetToItsListing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	ctx := context.Background()
	key := f.redis.Prefix() + "{budget}:" + payout.DayIn(f.clock.Now(), bogota).String()
	var dump string
	limit := func(c *Config) { c.DailyLimitCents = 1_000_000 }
	thirdBatchAfterABudgetLoss(t, f, f.engine(limit), limit, "budget",
		func() {
			var err error
			if dump, err = f.redis.Client().Dump(ctx, key).Result(); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			f.restartKeepingEpoch()
			if err := f.redis.Client().Restore(ctx, key, 0, dump).Err(); err != nil {
				t.Fatal(err)
			}
		})
}

// thirdBatchAfterABudgetLoss pays, through e, a day's first two batches of
// one account (100,000 and 600,000 cents; cfg, e's settings, sets a daily
// limit of 1,000,000), with
// snapshot called between them, then calls lose (the day's budget goes
// back to snapshot's copy) and hands a third batch of 400,000 cents to a
// dispatcher started afresh: it must be deferred (DAILY_LIMIT), not paid.
func thirdBatchAfterABudgetLoss(t *testing.T, f *fixture, e *Engine, cfg func(*Config), name string, snapshot, lose func()) {
	t.Helper()
	b0 := batch(name+"-0", map[string]int64{name + "-a": 100_000}, name+"-a")
	b1 := batch(name+"-1", map[string]int64{name + "-b": 600_000}, name+"-b")
	b2 := batch(name+"-2", map[string]int64{name + "-c": 400_000}, name+"-c")
	stop, _ := f.run(e)
	f.produce(f.topics.Batches, b0)
	eventually(t, "the first batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	snapshot()
	f.produce(f.topics.Batches, b1)
	eventually(t, "the second batch submitted", func() bool { return outcome(e, "submitted") == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lose()

	e2 := f.engine(cfg)
	stop2, _ := f.run(e2)
	f.produce(f.topics.Batches, b2)
	eventually(t, "the third batch handled", func() bool { return outcome(e2, "deferred")+outcome(e2, "submitted") > 0 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := f.sim.BatchLedger()[b2.BatchID].Accepted; n != 0 {
		t.Fatalf("the third batch was paid: 1,100,000 cents on a day whose limit is 1,000,000 (the budget lost the second batch's reservation)")
	}
	if n := outcome(e2, "deferred"); n != 1 {
		t.Fatalf("the third batch deferred %d times, want 1 (DAILY_LIMIT)", n)
	}
}

// addBatch keeps a Wompi batch of the day or after to book, on its amount
// day (the dispersion day when scheduled) and its slot day (the day it was
// created); one whose listing names no account counts against every
// account; days before the recovery's are over.
func TestListedSpendCountsWompiBatches(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 15, 0, 0, 0, bogota)
	today, tomorrow := payout.DayIn(at, bogota), payout.DayIn(at.Add(24*time.Hour), bogota)
	s := newListedSpend(at)
	s.addBatch(rail.Batch{Reference: "b-today", AmountInCents: 100, CreatedAt: at.Add(-time.Hour), OriginAccountID: "acc-1"})
	s.addBatch(rail.Batch{Reference: "b-over", AmountInCents: 20, CreatedAt: at.Add(-48 * time.Hour), OriginAccountID: "acc-1"})
	s.addBatch(rail.Batch{Reference: "b-later", AmountInCents: 3, CreatedAt: at, DispersionAt: at.Add(24 * time.Hour), OriginAccountID: "acc-1"})
	s.addBatch(rail.Batch{Reference: "b-none", AmountInCents: 7, CreatedAt: at})
	s.addBatch(rail.Batch{Reference: "b-odd", AmountInCents: 9, CreatedAt: at, OriginAccountID: "not an id"})
	want := []ratelimit.Reservation{
		{BatchID: "b-today", Rail: rail.Wompi, AccountID: "acc-1", Day: today.String(), SlotDay: today.String(), AmountInCents: 100},
		{BatchID: "b-later", Rail: rail.Wompi, AccountID: "acc-1", Day: tomorrow.String(), SlotDay: today.String(), AmountInCents: 3},
	}
	if !slices.Equal(s.wompi, want) {
		t.Errorf("to book: %+v, want %+v", s.wompi, want)
	}
	if got := s.days[rail.Wompi][today]; got != 16 {
		t.Errorf("against every account today: %d, want 16", got)
	}
}

// Two faults after a restore from an older snapshot: the first claim of a
// stale record moves it to the current epoch, and that attempt ends before
// its lookup (the lookup fails until a rebalance stops the job, or the
// replica crashes). The next claim read a record of the current epoch,
// "deferred" with no firstPostAt, and posted the batch without a lookup.
// The record keeps the mark for every later claim.
func TestStaleMarkOutlivesTheFirstClaim(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	ctx := context.Background()
	rec := e.st.batchKey("stale-twice")
	// The record as the older snapshot kept it.
	if err := f.redis.Client().HSet(ctx, rec, "state", stateDeferred, "owner", "", "lease", 0, "epoch", "an-earlier-epoch").Err(); err != nil {
		t.Fatal(err)
	}
	for i, owner := range []string{"first-after-the-restore", "first-after-the-restore", "another-replica"} {
		if i == 2 {
			if err := e.st.releaseLease(ctx, "first-after-the-restore", "stale-twice"); err != nil {
				t.Fatal(err)
			}
		}
		c, err := e.st.claim(ctx, owner, "e0", "stale-twice", rail.Wompi)
		if err != nil || c.code != "resume" {
			t.Fatalf("claim %d: %+v %v", i, c, err)
		}
		if !c.stale || !c.unproved() {
			t.Fatalf("claim %d by %s: stale %v, unproved %v: a batch Wompi may hold would be posted without a lookup", i, owner, c.stale, c.unproved())
		}
	}
	// The POST's transition, after the lookup, clears the mark: the
	// record's posting state calls for the lookups from then on, and a
	// payout found by them is not taken for one posted before the loss
	// (whose SUBMITTED would be left out).
	if _, err := e.st.transition(ctx, "another-replica", "e0", "stale-twice", []string{stateDeferred}, statePosting,
		"?firstPostAt", "1", "stale", "0"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.releaseLease(ctx, "another-replica", "stale-twice"); err != nil {
		t.Fatal(err)
	}
	if c, err := e.st.claim(ctx, "a-third-replica", "e0", "stale-twice", rail.Wompi); err != nil || c.stale || c.state != statePosting {
		t.Fatalf("claim after the POST's transition: %+v %v, want posting and not stale", c, err)
	}
	// A record claimed only under the current epoch is not stale.
	if c, err := e.st.claim(ctx, "w", "e0", "never-stale", rail.Wompi); err != nil || c.stale {
		t.Fatalf("fresh claim: %+v %v", c, err)
	}
	if err := e.st.releaseLease(ctx, "w", "never-stale"); err != nil {
		t.Fatal(err)
	}
	if c, err := e.st.claim(ctx, "w", "e0", "never-stale", rail.Wompi); err != nil || c.stale {
		t.Fatalf("second claim of a current record: %+v %v", c, err)
	}
}

// Two faults: the first attempt on a record found stale after a restore
// looks the batch up, finds nothing, posts it, and crashes before it
// records the payout. The next attempt finds the payout by reference. Were
// the record still stale, that payout would be taken for one posted before
// the loss, and the batch's SUBMITTED left out; the POST's transition made
// the record this epoch's again, and SUBMITTED is emitted.
func TestStaleRecordPostedThenCrashedEmitsSubmitted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	b := simpleBatch("stale-crash", 2)
	ctx := context.Background()
	st := &store{prefix: f.redis.Prefix()}
	if err := f.redis.Client().HSet(ctx, st.batchKey(b.BatchID), "state", stateDeferred, "owner", "", "lease", 0, "epoch", "an-earlier-epoch").Err(); err != nil {
		t.Fatal(err)
	}
	crashAfterPost(t, f, b)
	e := f.engine(nil)
	stop, _ := f.run(e)
	eventually(t, "batch submitted after the restart", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	f.checkSubmitted(b)
	f.noDoublePayment()
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
}
