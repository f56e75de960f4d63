package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Two faults: the rail refuses a payee of a single-payout batch (REJECTED,
// final, written; the refusal recorded in the batch's record), and Redis,
// under an evicting policy, evicts that record (a done batch's record is
// cold: the first an LRU takes) before the batch is read again (its offset
// commit lost to a crash or a revocation after the move to done). No
// epoch changed, so no look on the status topic is made
// (readBeforeTheLoss); the claim is fresh, the index entries say an earlier
// attempt ran, and the refused payee, looked up absent, was posted again
// and paid after its final REJECTED.
func TestRefusedPayeeNotPostedAgainAfterItsRecordWasEvicted(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		ctx := context.Background()
		f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
		rdb := f.redis.Client()
		configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-lru")
		b := singleBatch(r, "refused-evicted-"+string(r.name), 2)
		refused := b.Transactions[1].RequestID
		tr := &refuseOnce{refuse: refused}
		rr := r.through(t, tr)
		src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
		e1 := rr.engine(f, nil)
		e1.checkEviction(ctx)
		bb := b
		if err := e1.process(ctx, &bb, src, testLogger()); err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		if rj := byStatus(f.statuses())[refused][payout.StatusRejected]; len(rj) != 1 {
			t.Fatalf("first attempt: %d REJECTED of the refused payee, want 1", len(rj))
		}
		// What an eviction may do to the done batch's record.
		if err := rdb.Del(ctx, e1.st.batchKey(b.BatchID)).Err(); err != nil {
			t.Fatal(err)
		}
		e2 := rr.engine(f, nil)
		e2.checkEviction(ctx)
		bb = b
		if err := e2.process(ctx, &bb, src, testLogger()); err != nil {
			t.Fatalf("the batch read again: %v", err)
		}
		if n := tr.posts.Load(); n != 1 || r.sim.Accepted(refused) != 0 {
			t.Errorf("the refused payee was posted %d times, paid %d: REJECTED, then paid", n, r.sim.Accepted(refused))
		}
		if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
			t.Errorf("the other payee paid %d times, want 1", n)
		}
		rejectedOnly(t, byStatus(f.statuses())[refused], refused, "under its eventId", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", refused, string(payout.StatusRejected), b.BatchID)
		})
	})
}

// Two faults: the rail refuses a payee (REJECTED, final), then Redis loses
// our state; a copy of the request (published again by its client, in a
// later batch: ingest's seen index, in the same Redis, lost too) is read
// after the recovery. Without the loss the copy is a DUPLICATE_REQUEST
// ("a requestId that ended REJECTED is consumed like a paid one: a copy is
// a duplicate, never a second life"). The recovery rebuilds the index from
// the rails' listings only, which hold nothing of a refused payee, and the
// look on the status topic asks for the copy's own batch's REJECTED: the
// copy was posted and paid after the request's final REJECTED.
func TestRefusedRequestCopyNotPaidAfterARedisLoss(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		ctx := context.Background()
		f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
		b1 := singleBatch(r, "refused-copy-"+string(r.name), 2)
		refused := b1.Transactions[1].RequestID
		tr := &refuseOnce{refuse: refused}
		rr := r.through(t, tr)
		src1 := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b1.BatchID), Timestamp: time.Now()}
		bb := b1
		if err := rr.engine(f, nil).process(ctx, &bb, src1, testLogger()); err != nil {
			t.Fatalf("first batch: %v", err)
		}
		if rj := byStatus(f.statuses())[refused][payout.StatusRejected]; len(rj) != 1 {
			t.Fatalf("first batch: %d REJECTED of the refused payee, want 1", len(rj))
		}
		// The copy, in a later batch written before the loss.
		b2 := singleBatch(r, "refused-copy2-"+string(r.name), 1)
		b2.Transactions[0] = b1.Transactions[1]
		src2 := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b2.BatchID), Timestamp: time.Now()}
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Fatal(err)
		}
		bb = b2
		if err := rr.engine(f, nil).process(ctx, &bb, src2, testLogger()); err != nil {
			t.Fatalf("the copy's batch: %v", err)
		}
		if n := r.sim.Accepted(refused); n != 0 {
			t.Errorf("the refused request's copy was paid %d times (POSTs %d): REJECTED, then paid", n, tr.posts.Load())
		}
		if n := len(byStatus(f.statuses())[refused][payout.StatusSubmitted]); n != 0 {
			t.Errorf("%d SUBMITTED after the request's REJECTED", n)
		}
		if got := f.duplicateCopies()[refused]; got != b2.BatchID {
			t.Errorf("the copy dead-lettered from batch %q, want %q (DUPLICATE_REQUEST)", got, b2.BatchID)
		}
		rejectedOnly(t, byStatus(f.statuses())[refused], refused, "under its first batch's eventId", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", refused, string(payout.StatusRejected), b1.BatchID)
		})
	})
}

// TestRefusedRequestCopyNotPaidAfterARedisLoss for Wompi: Wompi refuses a
// batch whole (REJECTED, final; Wompi holds nothing of it), Redis loses our
// state, and a copy of one of its requests comes in a later batch. The
// recovery's listing of Wompi's batches holds nothing of the refused one,
// and the copy's batch was posted and paid after the request's REJECTED.
func TestRefusedWompiRequestCopyNotPaidAfterARedisLoss(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault400
		}
		return faultNone
	}
	b1 := simpleBatch("refused-copy-wompi", 2)
	refused := b1.Transactions[0].RequestID
	src1 := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b1.BatchID), Timestamp: time.Now()}
	bb := b1
	if err := f.engine(nil).process(ctx, &bb, src1, testLogger()); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if rj := byStatus(f.statuses())[refused][payout.StatusRejected]; len(rj) != 1 {
		t.Fatalf("first batch: %d REJECTED of the refused request, want 1", len(rj))
	}
	// The copy, in a later batch with a new request.
	b2 := simpleBatch("refused-copy2-wompi", 2)
	b2.Transactions[0] = b1.Transactions[0]
	src2 := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b2.BatchID), Timestamp: time.Now()}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	bb = b2
	if err := f.engine(nil).process(ctx, &bb, src2, testLogger()); err != nil {
		t.Fatalf("the copy's batch: %v", err)
	}
	idx := byStatus(f.statuses())
	rejectedOnly(t, idx[refused], refused, "under its first batch's eventId", func(ev payout.StatusChange) bool {
		return ev.EventID == payout.EventID("status", refused, string(payout.StatusRejected), b1.BatchID)
	})
	if got := f.duplicateCopies()[refused]; got != b2.BatchID {
		t.Errorf("the copy dead-lettered from batch %q, want %q (DUPLICATE_REQUEST)", got, b2.BatchID)
	}
	if n := len(idx[b2.Transactions[1].RequestID][payout.StatusSubmitted]); n != 1 {
		t.Errorf("the copy's batch's new request: %d SUBMITTED, want 1", n)
	}
}
