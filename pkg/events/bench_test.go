package events

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

func BenchmarkDecodeRequest(b *testing.B) {
	c := newSOECodec(b)
	buf, err := c.AppendRequest(nil, typicalRequest())
	if err != nil {
		b.Fatal(err)
	}
	var r payout.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := c.DecodeRequest(buf, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequestNoMetadata(b *testing.B) {
	c := newSOECodec(b)
	req := typicalRequest()
	req.Metadata = nil
	buf, err := c.AppendRequest(nil, req)
	if err != nil {
		b.Fatal(err)
	}
	var r payout.Request
	b.ReportAllocs()
	for b.Loop() {
		if err := c.DecodeRequest(buf, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequestFull(b *testing.B) {
	c := newSOECodec(b)
	buf, err := c.AppendRequest(nil, fullRequest())
	if err != nil {
		b.Fatal(err)
	}
	var r payout.Request
	b.ReportAllocs()
	for b.Loop() {
		if err := c.DecodeRequest(buf, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	c := newSOECodec(b)
	req := typicalRequest()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = c.AppendRequest(buf[:0], req); err != nil {
			b.Fatal(err)
		}
	}
}

const benchBatchSize = 1000

func BenchmarkEncodeBatch(b *testing.B) {
	c := newSOECodec(b)
	batch := fullBatch(benchBatchSize)
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = c.AppendBatch(buf[:0], batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchBatchSize, "ns/tx")
}

func BenchmarkDecodeBatch(b *testing.B) {
	c := newSOECodec(b)
	buf, err := c.AppendBatch(nil, fullBatch(benchBatchSize))
	if err != nil {
		b.Fatal(err)
	}
	var batch payout.Batch
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := c.DecodeBatch(buf, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchBatchSize, "ns/tx")
}

// BenchmarkDecodeRequestRawHamba is the floor: hamba's Unmarshal of the same
// body into a fresh struct, without framing, pooling or aliasing safety.
func BenchmarkDecodeRequestRawHamba(b *testing.B) {
	c := newSOECodec(b)
	buf, err := c.AppendRequest(nil, typicalRequest())
	if err != nil {
		b.Fatal(err)
	}
	s := c.recs[RecordRequest].schema
	var r payout.Request
	b.ReportAllocs()
	for b.Loop() {
		r = payout.Request{}
		if err := c.api.Unmarshal(s, buf[soeHeaderLen:], &r); err != nil {
			b.Fatal(err)
		}
	}
}
