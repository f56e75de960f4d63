package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// BenchmarkHotPath measures the per-request work of ingest: decode the Avro
// value, validate it, and add it to its group's batch.
func BenchmarkHotPath(b *testing.B) {
	codec := newCodec(b)
	const n = 4096
	values := make([][]byte, n)
	for i := range n {
		r := request(i, fmt.Sprint("acc-", i%8), 0)
		r.Metadata = map[string]string{"order": fmt.Sprint("o-", i)}
		v, err := codec.AppendRequest(nil, &r)
		if err != nil {
			b.Fatal(err)
		}
		values[i] = v
	}
	agg := newAggregator("requests", 1000, wompi.DefaultDailyLimitCents, DefaultMaxBatchBytes)
	var req payout.Request
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		v := values[i%n]
		if err := codec.DecodeRequestWithoutMetadata(v, &req); err != nil {
			b.Fatal(err)
		}
		if wompi.Validate(&req, testNow) != nil {
			b.Fatal("invalid")
		}
		if closed, _, _ := agg.add(&req, 0, int64(i), len(v)); closed != nil {
			agg.seal(closed, testNow)
			agg.recycle(closed)
		}
		i++
	}
}

// BenchmarkIngestThroughput pushes requests through a real engine on kfake:
// decode, validate, batch, produce batches and one status event per request,
// commit transactions. It reports requests/s, and the process's CPU and
// heap allocations (count and bytes) per request (with the Kafka test broker's when it runs in this
// process, as kfake does).
func BenchmarkIngestThroughput(b *testing.B) {
	const perIter = 100_000
	k := testenv.Kafka(b)
	codec := newCodec(b)
	rs := testenv.Redis(b)
	topic := k.Topic(b, "requests", 6)
	prod := k.Client(b, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	total := perIter * b.N
	for i := range total {
		// Distinct requestIds: a repeated one is a copy (dead-lettered).
		r := request(i, fmt.Sprint("acc-", i%8), 0)
		v, _ := codec.AppendRequest(nil, &r)
		prod.Produce(context.Background(), &kgo.Record{Key: []byte(r.RequestID), Value: v}, nil)
	}
	if err := prod.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	f := &fixture{kafka: k, codec: codec}
	f.topics.Requests = topic
	f.topics.Batches = k.Topic(b, "batches", 6)
	f.topics.Status = k.Topic(b, "status", 6)
	f.topics.RequestsDLQ = k.Topic(b, "dlq", 1)
	f.topics.BatchesDeferred, f.topics.BatchStatus = "unused-deferred", "unused-bs"
	e, err := New(Config{
		Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...), kgo.ProducerLinger(2 * time.Millisecond), kgo.MaxBufferedRecords(200_000)},
		Codec: codec, Topics: f.topics, Group: "bench-" + topic, TransactionalID: "bench-" + topic,
		Redis: rs.Client(), RedisPrefix: rs.Prefix(),
		MaxTransactions: 1000, MaxWait: 500 * time.Millisecond, MaxWindow: 500 * time.Millisecond,
		Now: func() time.Time { return testNow }, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpustat.Self()
	b.ResetTimer()
	start := time.Now()
	go func() { done <- e.Run(ctx) }()
	for e.Committed() < int64(total) {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu := cpustat.Self() - cpu0
	runtime.ReadMemStats(&ms1)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "requests/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(total), "cpu-µs/request")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(total), "allocs/request")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(total), "B/request")
}

// BenchmarkSeenClaim measures the seen index's claim of one poll of 10,000
// fresh requestIds (one pipelined round trip, real Redis). It reports the
// cost per request.
func BenchmarkSeenClaim(b *testing.B) {
	rs := testenv.RedisOwn(b)
	idx := seenIndex{rdb: rs.Client(), prefix: rs.Prefix(), ttl: time.Hour}
	const n = 10_000
	ids, values, copies := make([]string, n), make([]string, n), make([]bool, n)
	b.ReportAllocs()
	cpu := testenv.StartCPU(b, rs.Client())
	round := 0
	for b.Loop() {
		for i := range n {
			ids[i] = fmt.Sprintf("req-%d-%d", round, i)
			values[i] = seenValue(0, int64(round*n+i), -1)
		}
		round++
		if err := idx.claim(context.Background(), ids, values, copies); err != nil {
			b.Fatal(err)
		}
	}
	cpu.Report(b.N*n, "request")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/request")
}
