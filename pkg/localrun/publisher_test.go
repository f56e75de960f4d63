package localrun

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The publisher carves its records, values and keys from chunks: a chunk
// handed out is never written again, even while the producer still holds
// its records. Several chunks' worth of requests, published as fast as the
// producer buffers them, are read back byte for byte.
func TestPublisherRecordsKeepTheirBytes(t *testing.T) {
	k := testenv.Kafka(t)
	codec, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Brokers: k.Brokers(), Codec: codec}
	s.Topics.Requests = k.Topic(t, "requests", 3)
	var pubErr atomic.Pointer[error]
	pub, err := s.NewPublisher(func(err error) { pubErr.CompareAndSwap(nil, &err) })
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	const n = 3*publishRecords + 100 // past three record chunks, and several byte chunks
	m := NewMarketplace("pub", 3, DefaultMix, func() time.Time { return time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC) })
	want := make([]payout.Request, n)
	for i := range n {
		m.Next(i, &want[i])
		if err := pub.Publish(context.Background(), &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(context.Background()); err != nil || pubErr.Load() != nil {
		t.Fatalf("flush: %v, publish: %v", err, pubErr.Load())
	}
	recs := k.ReadAll(t, s.Topics.Requests)
	if len(recs) != n {
		t.Fatalf("read %d records, want %d", len(recs), n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		var got payout.Request
		if err := codec.DecodeRequest(r.Value, &got); err != nil {
			t.Fatalf("record %q: %v", r.Key, err)
		}
		i, ok := m.Index(got.RequestID)
		if !ok || i >= n || string(r.Key) != got.RequestID || seen[got.RequestID] {
			t.Fatalf("record keyed %q holds request %q (index %d, %v; seen before: %v)", r.Key, got.RequestID, i, ok, seen[got.RequestID])
		}
		seen[got.RequestID] = true
		w := want[i]
		w.RequestedAt, got.RequestedAt = w.RequestedAt.UTC(), got.RequestedAt.UTC()
		if w.DispersionDatetime != nil && got.DispersionDatetime != nil {
			a, b := w.DispersionDatetime.UTC(), got.DispersionDatetime.UTC()
			w.DispersionDatetime, got.DispersionDatetime = &a, &b
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("request %d read back as %+v, published %+v", i, got, w)
		}
	}
}
