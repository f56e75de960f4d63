package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The upgrade path: a claim written by a release before the timestamp
// ("<partition>:<offset>", no timestamp) by a window that then aborted still
// names the record at that position when the new release reads it again
// (else the request would be dead-lettered as a copy of itself: lost); a
// record elsewhere, or at that position with another timestamp after a
// new-format claim, is a copy.
func TestSeenClaimOfThePreviousFormatStillNamesItsRecord(t *testing.T) {
	rs := testenv.Redis(t)
	idx := &seenIndex{rdb: rs.Client(), prefix: rs.Prefix(), ttl: time.Hour}
	ctx := context.Background()
	if err := rs.Client().Set(ctx, idx.key("old-1"), "0:5", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	copies := make([]bool, 4)
	ids := []string{"old-1", "old-1", "new-1", "new-1"}
	vals := []string{seenValue(0, 5, 1000), seenValue(0, 6, 1000), seenValue(0, 7, 1000), seenValue(0, 7, 2000)}
	if err := idx.claim(ctx, ids, vals, copies); err != nil {
		t.Fatal(err)
	}
	if got := fmtBools(copies); got != "0101" {
		t.Fatalf("copies = %s, want 0101", got)
	}
}

// Pair: a window's claims are written, then Redis is flushed and the window
// aborts (a crash between the claim and the commit, with a Redis loss in
// between); originals and re-keyed copies share the window. Read again on
// an empty index, each requestId must still end with one batch and one
// BATCHED, and every copy in the DLQ (none lost as a copy of itself).
func TestRedisFlushBetweenClaimAndAbortLosesNothing(t *testing.T) {
	f := newFixture(t, 2)
	var reqs []payout.Request
	for i := range 30 {
		reqs = append(reqs, request(500+i, "acc-a", 0))
	}
	var copies []*kgo.Record
	for i := range reqs {
		v, err := f.codec.AppendRequest(nil, &reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		copies = append(copies, &kgo.Record{Key: []byte("copy-" + reqs[i].RequestID), Value: v})
	}
	f.produce(reqs, copies...)
	e := f.engine("ingest-flush", nil)
	var n atomic.Int32
	e.afterClaim = func() error {
		if n.Add(1) <= 2 {
			if err := e.cfg.Redis.FlushAll(context.Background()).Err(); err != nil {
				return err
			}
			return errors.New("test: crash after the claims, Redis flushed")
		}
		return nil
	}
	stop := f.run(e)
	f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, len(copies), 60*time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status, f.topics.Batches)
	o := f.read(len(reqs))
	stop()
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.RequestID)
	}
	o.assertExactlyOnce(t, ids, nil)
	if len(o.dlq) != len(copies) {
		t.Fatalf("DLQ holds %d, want %d", len(o.dlq), len(copies))
	}
}
