package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The rail refuses a payee of a single-payout batch (REJECTED, final,
// written; the refusal recorded in the batch's record), and the record is
// gone before the batch is read again (its offset commit lost), on a Redis
// that evicts nothing: an operator deleted it, or it ran out while the
// payees' index entries live on. No epoch changed and Redis may not evict,
// so only the index (dedupe's "before": the entries are already this
// batch's) says an earlier attempt ran and may have had a payee refused:
// refusalMayBeLost must heed it by itself (the eviction tests cover the
// sequence under an evicting policy, where mayEvict alone makes the look).
// Ignored, the refused payee, looked up absent, is posted again and paid
// after its final REJECTED.
func TestRefusedPayeeNotPostedAgainAfterItsRecordWentWithoutEviction(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		ctx := context.Background()
		f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
		rdb := f.redis.Client()
		configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
		b := singleBatch(r, "refused-gone-"+string(r.name), 2)
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
		// The done batch's record only: the payees' index entries stay.
		if err := rdb.Del(ctx, e1.st.batchKey(b.BatchID)).Err(); err != nil {
			t.Fatal(err)
		}
		e2 := rr.engine(f, nil)
		e2.checkEviction(ctx)
		if e2.mayEvict.Load() {
			t.Fatal("the dispatcher reads Redis as evicting: the test proves nothing")
		}
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
