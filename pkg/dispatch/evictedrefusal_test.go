package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// TestRefusedPayeeNotPostedAgainAfterItsRecordWasEvicted for Wompi (review): Wompi
// refuses the batch (REJECTED, final; the refusal recorded in the batch's
// record), Redis, under an evicting policy, evicts that record (a rejected
// batch's record is cold) before the batch is read again (its offset
// commit lost). No epoch changed, so readBeforeTheLoss is false and no look
// on the batch status topic is made; the claim is fresh, the lookup by
// reference finds nothing (Wompi created nothing), and the batch was
// posted again: accepted, its requests read REJECTED then SUBMITTED.
func TestRefusedWompiBatchNotPostedAgainAfterItsRecordWasEvicted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
	rdb := f.redis.Client()
	configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-lru")
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault400
		}
		return faultNone
	}
	b := simpleBatch("refused-evicted-wompi", 2)
	src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
	e1 := f.engine(nil)
	e1.checkEviction(ctx)
	bb := b
	if err := e1.process(ctx, &bb, src, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	for _, tx := range b.Transactions {
		if rj := byStatus(f.statuses())[tx.RequestID][payout.StatusRejected]; len(rj) != 1 {
			t.Fatalf("first attempt: %s: %d REJECTED, want 1", tx.RequestID, len(rj))
		}
	}
	// What an eviction may do to the rejected batch's record.
	if err := rdb.Del(ctx, e1.st.batchKey(b.BatchID)).Err(); err != nil {
		t.Fatal(err)
	}
	e2 := f.engine(nil)
	e2.checkEviction(ctx)
	bb = b
	if err := e2.process(ctx, &bb, src, testLogger()); err != nil {
		t.Fatalf("the batch read again: %v", err)
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Errorf("%d POSTs, want 1: the batch was posted again after its REJECTED", n)
	}
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		rejectedOnly(t, idx[tx.RequestID], tx.RequestID, "under the batch's eventId", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", tx.RequestID, string(payout.StatusRejected), b.BatchID)
		})
	}
}
