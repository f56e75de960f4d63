package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
)

// CPUMeter measures a Redis benchmark's CPU on both sides: redis-server's
// (INFO cpu) and this process's, the client with the benchmark's own
// bookkeeping. Start it where the timed part begins and Report where it
// ends; use a Redis of the benchmark's own ([RedisOwn]), so that no other
// work is counted.
type CPUMeter struct {
	b             *testing.B
	rdb           redis.Cmdable
	redis0, self0 time.Duration
}

// StartCPU takes the first readings and resets b's timer.
func StartCPU(b *testing.B, rdb redis.Cmdable) *CPUMeter {
	b.Helper()
	m := &CPUMeter{b: b, rdb: rdb, redis0: redisCPU(b, rdb), self0: cpustat.Self()}
	b.ResetTimer()
	return m
}

// Report stops b's timer and reports redis-µs/<unit> and client-µs/<unit>
// over n units of work (requests, transitions, ...); n must be positive.
func (m *CPUMeter) Report(n int, unit string) {
	m.b.Helper()
	m.b.StopTimer()
	if n <= 0 {
		m.b.Fatalf("testenv: CPUMeter.Report over %d %ss", n, unit)
	}
	self := cpustat.Self() - m.self0
	red := redisCPU(m.b, m.rdb) - m.redis0
	m.b.ReportMetric(float64(red.Microseconds())/float64(n), "redis-µs/"+unit)
	m.b.ReportMetric(float64(self.Microseconds())/float64(n), "client-µs/"+unit)
}

// redisCPU is redis-server's CPU so far; a failed reading fails b.
func redisCPU(b *testing.B, rdb redis.Cmdable) time.Duration {
	b.Helper()
	d, err := cpustat.Redis(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
