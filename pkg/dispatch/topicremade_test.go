package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A deferred copy's headerStatusLooked names offsets of the status topic
// as it was. The topic is then deleted and made again (a migration, a
// restore, an operator's mistake put right), and a payee's REJECTED for
// this batch is written to the new log (mirrored from the old one, or
// written by an attempt whose refusal a later Redis loss took) below
// those offsets; by the time the copy is read, the new log has grown past
// them, so ErrOffsetsAhead does not tell. Read from the old log's offsets,
// the look skipped the REJECTED and the payee was posted: paid twice once
// the marketplace re-sends it under a new requestId. The header names the
// topic's id, and a copy whose id is not the topic's looks from the
// batch's first write.
func TestDeferredCopyLookAfterTheStatusTopicWasMadeAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true, ownRedis: true, noEpoch: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[0](t)
	tenOClock(f, r)
	ctx := context.Background()
	first := singleBatch(r, "remade-first", 1)
	if err := r.engine(f, nil).process(ctx, &first, &kgo.Record{Topic: f.topics.Batches, Timestamp: time.Now()}, testLogger()); err != nil {
		t.Fatalf("first start: %v", err)
	}
	b := singleBatch(r, "remade", 1)
	src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	statusFiller(t, f, 50)
	nb, cp, _ := deferredAgain(t, f, r, b, src)
	if len(cp.Headers) == 0 {
		t.Fatal("the copy carries no header of its look")
	}

	// The status topic made again, with as many partitions.
	if err := f.kafka.Fake().DeleteTopic(f.topics.Status); err != nil {
		t.Fatal(err)
	}
	f.kafka.CreateTopic(t, f.topics.Status, 2)

	rid := b.Transactions[0].RequestID
	v, err := f.codec.AppendStatusChange(nil, dispatcherRejectedPayee(f, b, 0))
	if err != nil {
		t.Fatal(err)
	}
	f.kafka.Produce(t, f.topics.Status, &kgo.Record{Key: []byte(rid), Value: v})
	statusFiller(t, f, 200) // the new log past the old offsets
	f.clock.Advance(24 * time.Hour)
	e := r.engine(f, nil)
	if err := e.process(ctx, &nb, cp, testLogger()); err != nil {
		t.Fatal(err)
	}
	if n := r.sim.Accepted(rid); n != 0 {
		t.Fatalf("payee REJECTED on the status topic made again, then paid %d times", n)
	}
}

// A header without the topic's id (the format's first version) is not
// read back, and none is written when the brokers give no topic id: the
// look goes from the batch's first write.
func TestLookedHeaderWithoutTopicIDIsNotTrusted(t *testing.T) {
	j := &job{src: &kgo.Record{Headers: []kgo.RecordHeader{{Key: headerStatusLooked, Value: []byte("st 0:42,1:7")}}}}
	if id, got := j.lookedBefore("st"); got != nil {
		t.Errorf("read back %s %v from a header without the topic's id, want none", id, got)
	}
	j.b = &payout.Batch{Transactions: []payout.Transaction{{RequestID: "a"}}}
	j.looked = &lookSpan{topic: "st", ends: map[int32]int64{0: 42}, ids: map[string]bool{"a": true}}
	if h, ok := j.lookedHeader([]int{0}); ok {
		t.Errorf("header %q written without the topic's id", h.Value)
	}
}
