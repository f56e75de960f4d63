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

// The seen index named a claim's record by "partition:offset" only. After
// the requests topic is deleted and re-created (the scenario TestBatchAfterTheTopicIsRecreatedGetsANewID already treats as
// one to survive; Redis keeps its claims), positions start again from 0: a
// copy of a batched request republished at its original's old position
// finds the original's claim, takes it for its own (a window read again),
// and is batched a second time with a second BATCHED. The index must tell
// the two records apart (the record's timestamp does: a record read again
// keeps it, a record published again gets its own).
func TestCopyAtItsOriginalsPositionAfterTheTopicIsRecreatedIsACopy(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	window := func(c *Config) { c.MaxWait, c.MaxWindow = time.Second, time.Second }
	o, a := request(1, "acc-a", 0), request(2, "acc-a", 0)
	f.produce([]payout.Request{o, a})
	stop1 := f.run(f.engine("ingest-recreated-1", window))
	f.read(2)
	stop1()

	ctx := context.Background()
	if _, err := f.kafka.Admin(t).DeleteTopics(ctx, f.topics.Requests); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	f.kafka.CreateTopic(t, f.topics.Requests, 1)
	n := request(3, "acc-a", 0)
	// o lands at its old position (partition 0, offset 0).
	f.produce([]payout.Request{o, n})
	e2 := f.engine("ingest-recreated-2", window)
	stop2 := f.run(e2)
	for deadline := time.Now().Add(60 * time.Second); e2.Committed() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second engine committed %d requests, want 2", e2.Committed())
		}
	}
	f.kafka.Settle(t, 30*time.Second, f.topics.Status, f.topics.Batches, f.topics.RequestsDLQ)
	out := f.read(3)
	stop2()

	if len(out.batchOf[n.RequestID]) != 1 {
		t.Fatalf("n is in batches %v, want one", out.batchOf[n.RequestID])
	}
	if got := out.batchOf[o.RequestID]; len(got) != 1 {
		t.Errorf("o is in %d committed batches %v: its copy at its old position was taken for its own claim", len(got), got)
	}
	if st := out.statuses[o.RequestID]; len(st) != 1 {
		t.Errorf("o has %d status events, want one BATCHED: %+v", len(st), st)
	}
	if errs := dlqErrors(out.dlq); len(errs[o.RequestID]) != 1 || errs[o.RequestID][0] != string(payout.ReasonDuplicateRequest) {
		t.Errorf("DLQ = %v, want o's copy as DUPLICATE_REQUEST", errs)
	}
}

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
