package wompitest_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// BenchmarkCreatePayout posts 500-transaction batches over real HTTP on
// loopback, from parallel clients, and reports accepted transactions per
// second.
func BenchmarkCreatePayout(b *testing.B) {
	const perBatch = 500
	s := wompitest.NewTestServer(b, wompitest.Config{Clock: wompitest.NewManualClock(time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)),
		DailyBatchCap: 1 << 30, ClientDailyLimitInCents: 1 << 62,
		Accounts: []wompitest.Account{{ID: "bench", Number: "1", BankCode: "1007", BalanceInCents: 1 << 62, DailyLimitInCents: 1 << 62}}})
	c := s.Client(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}})
	var seq atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			req := &wompi.CreatePayoutRequest{Reference: fmt.Sprintf("bench-%d", n), AccountID: "bench", PaymentType: wompi.PaymentTypeProviders,
				Transactions: make([]wompi.TransactionRequest, perBatch)}
			for i := range req.Transactions {
				req.Transactions[i] = wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000000", BankID: wompitest.BankID("1007"),
					AccountType: "AHORROS", AccountNumber: "1234567890", Name: "Ana Pérez", Email: "ana@example.co",
					Amount: 1000, Reference: fmt.Sprintf("bench-%d-%d", n, i)}
			}
			if _, err := c.CreatePayout(context.Background(), fmt.Sprintf("bench-%d", n), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "tx/s")
}
