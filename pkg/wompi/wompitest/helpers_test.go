package wompitest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// t0 is 10:00 in Bogota (15:00 UTC).
var t0 = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

func start(t *testing.T, cfg wompitest.Config) (*wompitest.Server, *wompi.Client, *wompitest.ManualClock) {
	t.Helper()
	clock := wompitest.NewManualClock(t0)
	cfg.Clock = clock
	if cfg.WebhookBackoff == 0 {
		cfg.WebhookBackoff = time.Millisecond
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	s := wompitest.NewTestServer(t, cfg)
	return s, s.Client(nil), clock
}

func txr(ref, account string, amount int64) wompi.TransactionRequest {
	return wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000000", BankID: wompitest.BankID("1007"),
		AccountType: "AHORROS", AccountNumber: account, Name: "Ana Pérez", Email: "ana@example.co", Amount: amount, Reference: ref}
}

func batchr(ref, account string, txs ...wompi.TransactionRequest) *wompi.CreatePayoutRequest {
	return &wompi.CreatePayoutRequest{Reference: ref, AccountID: account, PaymentType: wompi.PaymentTypeProviders, Transactions: txs}
}

// raw sends a request with the simulator's credentials.
func raw(t *testing.T, s *wompitest.Server, method, path string, headers map[string]string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL()+path, bytes.NewReader(body))
	req.Header.Set(wompi.HeaderAPIKey, s.Config().APIKey)
	req.Header.Set(wompi.HeaderPrincipalID, s.Config().PrincipalID)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// receiver records webhooks; fail(n) makes the n next deliveries answer 500.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []*wompi.Event
	bodies [][]byte
	fails  int
	hits   int
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits++
		if r.fails > 0 {
			r.fails--
			w.WriteHeader(500)
			return
		}
		ev, err := wompi.ParseEvent(b, req.Header.Get(wompi.HeaderEventChecksum), secret)
		if err != nil {
			t.Errorf("webhook does not verify: %v", err)
			w.WriteHeader(400)
			return
		}
		r.events = append(r.events, ev)
		r.bodies = append(r.bodies, b)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) snapshot() ([]*wompi.Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*wompi.Event(nil), r.events...), r.hits
}

func (r *receiver) fail(n int) {
	r.mu.Lock()
	r.fails = n
	r.mu.Unlock()
}

func waitHooks(t *testing.T, s *wompitest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatalf("webhooks: %v", err)
	}
}

func describe(ev *wompi.Event) string {
	if ev.Transaction != nil {
		return fmt.Sprintf("tx:%s:%s", ev.Transaction.ID, ev.Transaction.Status)
	}
	if ev.Payout != nil {
		return fmt.Sprintf("payout:%s:%s", ev.Payout.Reference, ev.Payout.Status)
	}
	return ev.Event
}
