package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Two faults lined up: a single-payout batch has one payee refused
// (REJECTED, final) and one whose rail stays down (its copy waits on the
// deferred topic), just before midnight; the original's offset commit is
// lost (a crash or a rebalance after the produce), and the original is
// read again on the next day, whose budget has no room for it. The attempt
// defers the batch again: the refused payee must get no DEFERRED after its
// REJECTED (one lifecycle per requestId), as deferRail already ensures.
func TestRefusedPayeeGetsNoDeferredWhenTheOriginalIsReadAgainOnAFullDay(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, loc, _, tomorrow := beforeMidnight(t, r)
		const limit = 300_000
		b := singleBatch(r, "refused-fullday", 3)
		refused, down := b.Transactions[1].RequestID, b.Transactions[2].RequestID
		tr := &refuseOnce{refuse: refused, downID: down}
		tr.down.Store(true)
		timing := func(c *Config) {
			c.RailPatience, c.SingleConcurrency, c.DailyLimitCents = 500*time.Millisecond, 1, limit
		}
		e1 := r.through(t, tr).engine(f, timing)
		bb := b
		if err := e1.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		idx := byStatus(f.statuses())
		if len(idx[refused][payout.StatusRejected]) != 1 || len(idx[down][payout.StatusDeferred]) != 1 {
			t.Fatalf("first attempt: refused %v, down %v", idx[refused], idx[down])
		}
		// The next day: another batch of the account uses part of it.
		f.clock.Set(tomorrow.StartIn(loc).Add(time.Hour))
		e2 := r.through(t, tr).engine(f, timing)
		other := singleBatch(r, "refused-fullday-other", 1)
		for i := range other.Transactions {
			other.Transactions[i].RequestedAt = f.clock.Now()
		}
		other.CreatedAt = f.clock.Now()
		ob := other
		if err := e2.process(context.Background(), &ob, nil, testLogger()); err != nil {
			t.Fatalf("other batch: %v", err)
		}
		// The original read again (its offset was never committed).
		bb = b
		if err := e2.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("the original read again: %v", err)
		}
		idx = byStatus(f.statuses())
		if d := idx[refused][payout.StatusDeferred]; len(d) != 0 {
			t.Errorf("the refused payee got DEFERRED %s after its REJECTED", *d[0].ReasonCode)
		}
		f.checkLifecycles()
	})
}

// Two faults lined up: a Wompi batch has a payee dropped for an unknown
// bank (REJECTED UNKNOWN_BANK_ID, final) and is deferred (its account's
// daily budget is used up); the original's offset commit is lost (a crash
// or a rebalance after the produce), and the original is read again by a
// replica without a bank table while Wompi is down past the dispatcher's
// patience (GET /banks fails, so screening cannot run). The batch waits on
// the deferred topic again: the dropped payee must get no DEFERRED after
// its REJECTED.
func TestUnknownBankPayeeGetsNoDeferredWhenReadAgainDuringAnOutage(t *testing.T) {
	t.Parallel()
	unknownBankReadAgainDuringAnOutage(t, "bank-outage", false)
}

// The peek in wompiUnavailable reads back what an earlier attempt indexed
// (from a review): when one kept payee's entry is gone (evicted under a
// maxmemory policy, or cut by an older snapshot) while the dropped payee's
// "#r" entry is still there, the peek reported whole=false and the batch
// was deferred whole again: the payee dropped for an unknown bank, REJECTED
// (final) on the first attempt, got DEFERRED after it.
func TestPeekWithOneEntryGoneStillKeepsTheUnknownBankDropOut(t *testing.T) {
	t.Parallel()
	unknownBankReadAgainDuringAnOutage(t, "bank-outage-evicted", true)
}

// unknownBankReadAgainDuringAnOutage runs the sequence of
// TestUnknownBankPayeeGetsNoDeferredWhenReadAgainDuringAnOutage, with one
// kept payee's index entry deleted before the original is read again when
// evictKept is set.
func unknownBankReadAgainDuringAnOutage(t *testing.T, name string, evictKept bool) {
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := simpleBatch(name, 3)
	b.Transactions[1].Beneficiary.BankCode = "9999"
	dropped := b.Transactions[1].RequestID
	timing := func(c *Config) {
		c.DailyLimitCents, c.RailPatience, c.RailRetry = 150_000, 500*time.Millisecond, 2*time.Second
	}
	e1 := f.engine(timing)
	bb := b
	if err := e1.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	idx := byStatus(f.statuses())
	if len(idx[dropped][payout.StatusRejected]) != 1 || len(idx[b.Transactions[0].RequestID][payout.StatusDeferred]) != 1 {
		t.Fatalf("first attempt: dropped %v, kept %v", idx[dropped], idx[b.Transactions[0].RequestID])
	}
	if evictKept {
		key := f.redis.Prefix() + "{dispatch}:req:" + b.Transactions[2].RequestID
		if err := f.redis.Client().Del(context.Background(), key).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The original read again by another replica (no bank table yet),
	// Wompi down.
	f.wompiDown(true)
	e2 := f.engine(timing)
	bb = b
	if err := e2.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original read again: %v", err)
	}
	idx = byStatus(f.statuses())
	if d := idx[dropped][payout.StatusDeferred]; len(d) != 0 {
		t.Errorf("the payee dropped for an unknown bank got DEFERRED %s after its REJECTED", *d[0].ReasonCode)
	}
	f.checkLifecycles()
}

// Two faults lined up: a single-payout batch is paid in full (SUBMITTED
// for each payee) and its offset commit is lost (a crash); Redis loses our
// state with it. The original is read again: its claim is fresh, and the
// day's budget, seeded from the rail's listing (which holds this batch's
// own payouts), has no room for it. The batch is deferred before any
// lookup: payees already SUBMITTED (perhaps APPROVED by their webhooks)
// must get no DEFERRED after it.
func TestPaidSingleBatchReadAgainAfterARedisLossGetsNoDeferred(t *testing.T) {
	t.Parallel()
	for i := range singleRails(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
			r := singleRailsAt(t, f.clock)[i](t)
			tenOClock(f, r)
			timing := func(c *Config) { c.DailyLimitCents = 300_000 }
			b := singleBatch(r, "paid-loss", 3) // 300,000 cents
			src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
			bb := b
			if err := r.engine(f, timing).process(context.Background(), &bb, src, testLogger()); err != nil {
				t.Fatalf("first attempt: %v", err)
			}
			if paid := paidOf(r, b); paid != 300_000 {
				t.Fatalf("paid %d, want 300000", paid)
			}
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			bb = b
			if err := r.engine(f, timing).process(context.Background(), &bb, src, testLogger()); err != nil {
				t.Fatalf("the original read again: %v", err)
			}
			idx := byStatus(f.statuses())
			for _, tx := range b.Transactions {
				if d := idx[tx.RequestID][payout.StatusDeferred]; len(d) != 0 {
					t.Errorf("%s: SUBMITTED then DEFERRED %s", tx.RequestID, *d[0].ReasonCode)
				}
			}
			f.checkLifecycles()
			if paid := paidOf(r, b); paid != 300_000 {
				t.Fatalf("paid %d, want 300000", paid)
			}
		})
	}
}
