package ratelimit_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// BenchmarkReserve measures one Reserve (one EVALSHA round trip over
// loopback TCP) against a real redis-server.
func BenchmarkReserve(b *testing.B) {
	rs := testenv.Redis(b)
	ctx := context.Background()
	bud := newBudget(b, rs.Client(), rs.Prefix(), 1<<30, 1<<60)
	if _, err := bud.Seed(ctx, rail.Wompi, day, acctA, 0, 0); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "batch-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		g, err := bud.Reserve(ctx, ratelimit.Reservation{BatchID: ids[i], AccountID: acctA, Day: day, SlotDay: day, AmountInCents: 12_345_00})
		if err != nil || !g.Granted {
			b.Fatal(g, err)
		}
	}
}

// BenchmarkReserveParallel is Reserve from GOMAXPROCS goroutines sharing a
// client, the dispatcher's shape.
func BenchmarkReserveParallel(b *testing.B) {
	rs := testenv.Redis(b)
	ctx := context.Background()
	bud := newBudget(b, rs.Client(), rs.Prefix(), 1<<30, 1<<60)
	if _, err := bud.Seed(ctx, rail.Wompi, day, acctA, 0, 0); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "batch-" + strconv.FormatInt(n.Add(1), 10)
			if _, err := bud.Reserve(ctx, ratelimit.Reservation{BatchID: id, AccountID: acctA, Day: day, SlotDay: day, AmountInCents: 100}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkLimiterAllow(b *testing.B) {
	rs := testenv.Redis(b)
	ctx := context.Background()
	l, err := ratelimit.NewLimiter(rs.Client(), rs.Key("bench"), 1e6, 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := l.Allow(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
