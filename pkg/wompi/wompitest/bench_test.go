package wompitest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
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

// BenchmarkLedger is the simulator's side of the load run, in process and
// without a network: each operation creates a 2,000-transaction payout
// (POST /payouts, as the dispatcher encodes it), lists its transactions
// back in pages of 1,000 (the dispatcher's listing after its POST) and
// reads them once more (a tracker poll). The ledger grows with every
// operation, as the simulator's does in a run, so its collector's work is
// counted: compare builds at the same -benchtime=Nx.
func BenchmarkLedger(b *testing.B) {
	const perBatch, page = 2000, 1000
	s, err := wompitest.New(wompitest.Config{Clock: wompitest.NewManualClock(time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)),
		DailyBatchCap: 1 << 30, ClientDailyLimitInCents: 1 << 62, SettleDelay: time.Hour, SettleJitter: -1,
		Accounts: []wompitest.Account{{ID: "bench", Number: "1", BankCode: "1007", BalanceInCents: 1 << 62, DailyLimitInCents: 1 << 62}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	req := &wompi.CreatePayoutRequest{AccountID: "bench", PaymentType: wompi.PaymentTypeProviders,
		Transactions: make([]wompi.TransactionRequest, perBatch)}
	for i := range req.Transactions {
		req.Transactions[i] = wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000000", BankID: wompitest.BankID("1007"),
			AccountType: "AHORROS", AccountNumber: "1234567890", Name: "Ana Pérez", Email: "ana@example.co",
			Amount: 1000, PersonType: "NATURAL", Description: "Pago marketplace"}
	}
	newReq := func(method, target string, body []byte) *http.Request {
		r := httptest.NewRequest(method, target, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(wompi.HeaderAPIKey, "sim-api-key")
		r.Header.Set(wompi.HeaderPrincipalID, "sim-principal")
		return r
	}
	post := func(target string, body []byte) *httptest.ResponseRecorder {
		r := newReq(http.MethodPost, target, body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusCreated {
			b.Fatalf("POST %s: %d %s", target, w.Code, w.Body.String()[:min(w.Body.Len(), 300)])
		}
		return w
	}
	// get reads a page the way a connection would: its bytes are written
	// out and not kept.
	get := func(target string) {
		r := newReq(http.MethodGet, target, nil)
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK || w.n == 0 {
			b.Fatalf("GET %s: %d, %d bytes", target, w.code, w.n)
		}
	}
	var body []byte
	var created struct {
		Data struct {
			PayoutID string `json:"payoutId"`
		} `json:"data"`
	}
	// cpu adds up this process's CPU over the timed parts: the collector's
	// work runs on the other core too, and the wall time misses it.
	var cpu time.Duration
	var c0 time.Duration
	start := func() { b.StartTimer(); c0 = cpustat.Self() }
	stop := func() { cpu += cpustat.Self() - c0; b.StopTimer() }
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for n := range b.N {
		req.Reference = fmt.Sprintf("bench-%d", n)
		for i := range req.Transactions {
			req.Transactions[i].Reference = fmt.Sprintf("bench-%d-%d", n, i)
		}
		body = wompi.AppendCreatePayoutBody(body[:0], req)
		start()
		w := post("/v1/payouts", body)
		stop()
		if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil || created.Data.PayoutID == "" {
			b.Fatalf("create answer %q: %v", w.Body.String(), err)
		}
		start()
		for range 2 { // the listing, then a poll
			for p := 1; p <= perBatch/page; p++ {
				get(fmt.Sprintf("/v1/payouts/%s/transactions?limit=%d&page=%d", created.Data.PayoutID, page, p))
			}
		}
		stop()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*perBatch), "cpu-ns/tx")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/tx")
}

// discardWriter is an http.ResponseWriter that counts what it is given.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}
