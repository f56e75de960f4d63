package ingest

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dlqRecord left out a value too large for the DLQ topic, but kept the
// source record's key and headers (from a review). A request record whose key
// (or headers) alone pass the DLQ topic's max.message.bytes (bad input from
// a marketplace; or a requestId far too long whose REJECTED is too large
// for the status topic, keyed by that requestId) makes a DLQ record the
// producer refused on every re-read: each window aborted (MESSAGE_TOO_LARGE),
// the learned DLQ limit halved down to the floor (every later dead letter
// then lost its value), and the window was re-read for ever. Every
// partition of the instance stalled on one bad record.
func TestDeadLetterWhoseKeyAloneIsTooLargeDoesNotStall(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  func() *kgo.Record
	}{
		{"key", func() *kgo.Record {
			return &kgo.Record{Key: bytes.Repeat([]byte("k"), 3000), Value: []byte{0xFF, 1, 2, 3}}
		}},
		{"headers", func() *kgo.Record {
			return &kgo.Record{Key: []byte("key-with-big-headers"), Value: []byte{0xFF, 1, 2, 3},
				Headers: []kgo.RecordHeader{{Key: "trace", Value: bytes.Repeat([]byte("h"), 3000)}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1)
			f.limitTopic(&f.topics.RequestsDLQ, 2000)
			reqs, ids := bulky(5, 0)
			f.produce(reqs[:2], tc.rec())
			f.produce(reqs[2:])
			e := f.engine("ingest-dlq-key-too-large", nil)
			stop := f.run(e)
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if len(f.kafka.ReadAll(t, f.topics.Status)) >= len(reqs) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if n := len(f.kafka.ReadAll(t, f.topics.Status)); n < len(reqs) {
				stop()
				t.Fatalf("after 30s only %d of %d requests have a status: the partition is stalled behind the bad record "+
					"(windows aborted: %v, produce errors: %v, learned limits: %v)", n, len(reqs),
					testutil.ToFloat64(e.m.txns.WithLabelValues("aborted")), testutil.ToFloat64(e.m.produceErrors), learnedLimits(e))
			}
			o := f.read(len(reqs))
			stop()
			o.assertExactlyOnce(t, ids, nil)
			if len(o.dlq) != 1 {
				t.Fatalf("DLQ holds %d records, want the bad one", len(o.dlq))
			}
			if src := srcOffset(o.dlq[0]); src != "offset 2" {
				t.Fatalf("DLQ record names source %s, want offset 2", src)
			}
		})
	}
}
