package dispatch

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Two faults lined up on a Wompi batch's look (rejectedOnTopic). Its first
// try is cut short, its progress kept; the batch status topic's partition
// then loses its tail below where that try read (an unclean leader
// election: the same log, its id unchanged). The retry's resumed read is
// past the end (events.ErrOffsetsAhead) and looks again whole, but that
// whole look fails before it knows where it starts (the partition's
// offsets not available yet, as just after a leader election). The log
// then grows again past the offsets the first try reached, and among what
// it grows by is the batch's REJECTED, below them (a dispatcher's write
// that landed after the loss of the tail). Offsets proven past the end of
// their log must never be resumed from: the next try looks whole and
// finds the REJECTED. Resuming from them skipped it, and the batch was
// posted after its REJECTED. Dropping the kept progress instead (as the
// look did before it was shared) loses what the first try found in the
// lost tail: the second case, whose REJECTED the first try read and the
// log lost.
func TestBatchLookNeverResumesFromOffsetsPastTheEnd(t *testing.T) {
	t.Parallel()
	t.Run("REJECTED landed below the offsets", func(t *testing.T) {
		t.Parallel()
		lookAheadTwice(t, "look-ahead", false)
	})
	t.Run("REJECTED read by the first try, then lost", func(t *testing.T) {
		t.Parallel()
		lookAheadTwice(t, "look-ahead-lost", true)
	})
}

// lookAheadTwice runs the sequence above; readBefore: the first try read
// the batch's REJECTED in the tail the log lost (none written since).
func lookAheadTwice(t *testing.T, name string, readBefore bool) {
	f := newFixture(t, fixtureOpt{kfake: true, ownRedis: true, noEpoch: true, partitions: 1})
	ctx := context.Background()
	first := simpleBatch(name+"-first", 1)
	if err := f.engine(nil).process(ctx, &first, &kgo.Record{Topic: f.topics.Batches, Timestamp: time.Now()}, testLogger()); err != nil {
		t.Fatalf("first start: %v", err)
	}
	b := simpleBatch(name, 1)
	src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	filler := func(n int) []*kgo.Record {
		recs := make([]*kgo.Record, n)
		for k := range recs {
			recs[k] = &kgo.Record{Key: []byte(b.BatchID), Value: []byte("x")}
		}
		return recs
	}
	f.kafka.Produce(t, f.topics.BatchStatus, filler(25)...)
	posts := len(f.tap.snapshot())

	// The batch status topic's offsets by time: the second such listing
	// of a try is refused while fail is set (OFFSET_NOT_AVAILABLE).
	var fail atomic.Bool
	var listed atomic.Int32
	fake := f.kafka.Fake()
	fake.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kr.(*kmsg.ListOffsetsRequest)
		byTime := false
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				byTime = byTime || (rt.Topic == f.topics.BatchStatus && p.Timestamp >= 0)
			}
		}
		if !fail.Load() || !byTime || listed.Add(1) != 2 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = p.Partition
				sp.ErrorCode = kerr.OffsetNotAvailable.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	e := f.engine(nil)
	cutLooksAfter(e, 10)
	if err := e.process(ctx, &b, src, testLogger()); err == nil || !strings.Contains(err.Error(), "TOPIC_BATCH_STATUS") {
		t.Fatalf("first try: %v, want its look cut short", err)
	}
	e.lookVisit = nil
	// The partition lost its tail below where the first try read.
	var lost string // the first try read the REJECTED in the lost tail
	if readBefore {
		lost = b.BatchID
	}
	progressPastTheEnd(t, e, src, lost, newRefusal("WOMPI_REJECTED", "refused by an attempt before the loss", false))

	fail.Store(true)
	err := e.process(ctx, &b, src, testLogger())
	fail.Store(false)
	if err == nil || !strings.Contains(err.Error(), "TOPIC_BATCH_STATUS") {
		t.Fatalf("second try: %v, want its whole look failed", err)
	}
	if n := listed.Load(); n != 2 {
		t.Fatalf("second try listed the offsets by time %d times, want 2 (the resumed look's, past the end; the whole look's, refused)", n)
	}

	// The log grows past the first try's offsets; the batch's REJECTED
	// lands below them.
	recs := filler(1100)
	v, err := f.codec.AppendBatchStatusChange(nil, dispatcherRejected(f, b, "refused by an attempt before the loss"))
	if err != nil {
		t.Fatal(err)
	}
	if !readBefore {
		recs[100].Value = v
	}
	f.kafka.Produce(t, f.topics.BatchStatus, recs...)

	if err := e.process(ctx, &b, src, testLogger()); err != nil {
		t.Fatalf("third try: %v", err)
	}
	if n := len(f.tap.snapshot()) - posts; n != 0 {
		t.Errorf("%d POSTs of a batch whose REJECTED is on the batch status topic", n)
	}
	if n := outcome(e, "rejected"); n != 1 {
		t.Errorf("batch ended rejected %v times, want 1", n)
	}
}
