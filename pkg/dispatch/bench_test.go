package dispatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// BenchmarkDispatch measures end-to-end throughput against the simulator
// over loopback HTTP, real Redis and kfake: each iteration dispatches 100
// batches of 100 transactions (claim, dedupe, budget, rate limit, POST,
// transaction listing, hand-off, 10,100 events, commit).
func BenchmarkDispatch(b *testing.B) {
	const batches, txs = 100, 100
	f := newFixture(b, fixtureOpt{partitions: 4})
	e := f.engine(func(c *Config) { c.RatePerSecond, c.RateBurst = 100_000, 1000 })
	stop, _ := f.run(e)
	defer stop()
	eventually(b, "partitions assigned", func() bool { return e.Assigned() == 5 })
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bs := make([]payout.Batch, batches)
		for k := range bs {
			bs[k] = simpleBatch(fmt.Sprintf("bench%d-%d", i, k), txs)
		}
		b.StartTimer()
		start := time.Now()
		f.produce(f.topics.Batches, bs...)
		want := (i + 1) * batches
		for outcome(e, "submitted") < want {
			time.Sleep(2 * time.Millisecond)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	sec := elapsed.Seconds()
	b.ReportMetric(float64(b.N*batches)/sec, "batches/s")
	b.ReportMetric(float64(b.N*batches*txs)/sec, "tx/s")
	f.noDoublePayment()
}
