package dispatch

import (
	"context"
	"testing"
	"time"
)

// Two faults together: a scheduled batch whose dispersion is further ahead
// than the dedupe window (ingest accepts any later day), and a Redis loss
// more than a window after the batch was posted but before a window past
// its payment. Before the loss the batch's entries live a window past the
// dispersion (TestScheduledBatchEntriesLiveAWindowPastTheDispersion); the
// recovery lists only the batches Wompi created in the last window, so the
// scheduled batch (still waiting at Wompi to pay) was not listed, its
// requestId was not indexed, and a copy of the request sent after the loss
// passed the index and was posted: paid twice once the dispersion came.
func TestLossLongAfterAFarScheduledPostKeepsItsRequestsUsed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	e := f.engine(nil)
	ctx := context.Background()
	ahead := e.cfg.DedupeWindow + 20*24*time.Hour
	at := testStart.Add(ahead).Truncate(time.Minute)
	b := simpleBatch("far-sched", 1)
	b.Schedule.DispersionDatetime = &at
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatal(err)
	}
	f.checkSubmitted(b)
	// A window and five days later, before the dispersion: Redis is lost.
	now := f.clock.Advance(e.cfg.DedupeWindow + 5*24*time.Hour)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := f.engine(nil)
	cp := simpleBatch("far-sched-copy", 0)
	cp.Transactions = append(cp.Transactions, b.Transactions[0])
	cp.Transactions[0].RequestedAt = now
	cp.TotalAmountInCents, cp.TransactionCount, cp.CreatedAt = b.Transactions[0].AmountInCents, 1, now
	if err := e2.process(ctx, &cp, nil, testLogger()); err != nil {
		t.Fatal(err)
	}
	f.noDoublePayment()
}
