package sfptest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

var ctx = context.Background()

// sink records the callbacks it receives, verified; fail, when set, picks
// the status of each answer.
type sink struct {
	t    *testing.T
	url  string
	wh   sfp.Webhooks
	mu   sync.Mutex
	got  []sfp.CallbackPayout
	hits atomic.Int64
	fail func(n int64) int
}

func newSink(t *testing.T, secret string) *sink {
	s := &sink{t: t, wh: sfp.Webhooks{Secret: secret}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.hits.Add(1)
		if s.fail != nil {
			if st := s.fail(n); st != 0 {
				w.WriteHeader(st)
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		cb, err := s.wh.Parse(r.Header, body)
		if err != nil {
			t.Errorf("sink: a callback does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, cb.Data...)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/webhooks/smartfastpay"
	return s
}

func (s *sink) statuses(txID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.got {
		if string(d.TransactionID) == txID {
			out = append(out, d.PayoutStatus)
		}
	}
	return out
}

func request(id, phone, callback string) rail.PayoutRequest {
	return rail.PayoutRequest{ID: id, AmountInCents: 98_000_00, Currency: "COP", CallbackURL: callback,
		Payee: rail.Payee{Name: "Ana Gómez", Email: "ana@example.com", Phone: phone, LegalID: "12345678909"}}
}

func manual(t *testing.T, cfg sfptest.Config) (*sfptest.Server, *sfptest.ManualClock, *sfp.Client) {
	clk := sfptest.NewManualClock(time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC))
	cfg.Clock = clk
	s := sfptest.NewTestServer(t, cfg)
	return s, clk, s.Client(nil)
}

func waitHooks(t *testing.T, s *sfptest.Server) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(c); err != nil {
		t.Fatal(err)
	}
}

// TestStatusRules: the documented phone-suffix table, on the manual clock,
// with one signed callback per move.
func TestStatusRules(t *testing.T) {
	s, _, c := manual(t, sfptest.Config{})
	sk := newSink(t, sfptest.DefaultWebhookSecret)
	cases := map[string]struct {
		phone string
		want  []string
	}{
		"default":  {"573001234500", []string{"onhold", "success"}},
		"failed":   {"573001234513", []string{"onhold", "failed"}},
		"refunded": {"573001234521", []string{"onhold", "success", "refunded"}},
		"returned": {"573001234522", []string{"onhold", "success", "returned"}},
		"on hold":  {"573001234598", []string{"onhold"}},
		"pending":  {"573001234599", nil},
	}
	for name, tc := range cases {
		if _, err := c.Create(ctx, request("req-"+strings.ReplaceAll(name, " ", ""), tc.phone, sk.url)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Advance(999 * time.Millisecond); n != 0 {
		t.Fatalf("%d moves before the step delay", n)
	}
	s.Advance(time.Millisecond) // 1 s: onhold
	s.Advance(time.Second)      // 2 s: success | failed
	s.Advance(3 * time.Second)  // 5 s: refunded | returned
	s.Advance(time.Hour)
	waitHooks(t, s)
	for name, tc := range cases {
		id := "req-" + strings.ReplaceAll(name, " ", "")
		if got := sk.statuses(id); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: callbacks %v, want %v", name, got, tc.want)
		}
		final := "pending"
		if len(tc.want) > 0 {
			final = tc.want[len(tc.want)-1]
		}
		if st, _ := s.Status(id); st != final {
			t.Errorf("%s: ends %s, want %s", name, st, final)
		}
	}
	tot := s.Totals()
	if tot.Success != 1 || tot.Failed != 1 || tot.Refunded != 1 || tot.Returned != 1 || tot.OnHold != 1 || tot.Pending != 1 {
		t.Fatalf("totals %+v", tot)
	}
	// Failed, refunded and returned credit the balance back.
	if b := s.Balance(); b != sfptest.DefaultBalanceInCents-3*98_000_00 {
		t.Fatalf("balance %d", b)
	}
}

// TestSecondPostPaysTwice: the honest worst case, seen by the ledger.
func TestSecondPostPaysTwice(t *testing.T) {
	s, _, c := manual(t, sfptest.Config{})
	sk := newSink(t, sfptest.DefaultWebhookSecret)
	for range 2 {
		if _, err := c.Create(ctx, request("req-twice", "573001234500", sk.url)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Create(ctx, request("req-once", "573001234500", sk.url)); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	if got := s.PaidMoreThanOnce(); len(got) != 1 || got[0] != "req-twice" {
		t.Fatalf("PaidMoreThanOnce = %v", got)
	}
	e, _ := s.LedgerEntry("req-twice")
	if e.Accepted != 2 || e.Paid != 2 || len(e.PayoutIDs) != 2 || e.PayoutIDs[0] == e.PayoutIDs[1] {
		t.Fatalf("ledger %+v", e)
	}
	resp, err := http.Get(s.URL() + "/_sim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var led struct {
		Duplicates       []string                       `json:"duplicates"`
		PaidMoreThanOnce []string                       `json:"paidMoreThanOnce"`
		Transactions     map[string]sfptest.LedgerEntry `json:"transactions"`
		Totals           sfptest.LedgerTotals           `json:"totals"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&led); err != nil {
		t.Fatal(err)
	}
	if len(led.Duplicates) != 1 || len(led.PaidMoreThanOnce) != 1 || led.Transactions["req-once"].Paid != 1 ||
		led.Totals.Payouts != 3 || led.Totals.PaidMoreThanOnce != 1 {
		t.Fatalf("GET /_sim/ledger: %+v", led)
	}
}

// post sends a raw create with a fresh token.
func post(t *testing.T, s *sfptest.Server, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+sfp.PathToken, nil)
	req.SetBasicAuth(sfptest.DefaultClientID, sfptest.DefaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Data struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodPost, s.URL()+sfp.PathPayout, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.Data.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestValidation: each documented field rule answers 400 naming the field,
// without echoing the value, and makes no payout.
func TestValidation(t *testing.T) {
	s, _, _ := manual(t, sfptest.Config{})
	good := map[string]any{"customer_id": "c-1", "name": "Ana Gómez", "email": "ana@example.com", "document": "12345678909",
		"phone": "573001234567", "amount": "300.10", "currency": "COP", "country": "COL",
		"callback": "https://marketplace.example.com/webhooks/smartfastpay", "transaction": map[string]any{"id": "req-v"}}
	body := func(mut func(m map[string]any)) string {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		mut(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct {
		name, field string
		mut         func(m map[string]any)
	}{
		{"no customer_id", "customer_id", func(m map[string]any) { delete(m, "customer_id") }},
		{"long customer_id", "customer_id", func(m map[string]any) { m["customer_id"] = strings.Repeat("c", 256) }},
		{"short name", "name", func(m map[string]any) { m["name"] = "Al" }},
		{"bad email", "email", func(m map[string]any) { m["email"] = "ana.example.com" }},
		{"document 10 digits", "document", func(m map[string]any) { m["document"] = "1234567890" }},
		{"document letters", "document", func(m map[string]any) { m["document"] = "1234567890X" }},
		{"phone not 57", "phone", func(m map[string]any) { m["phone"] = "553001234567" }},
		{"phone 11 digits", "phone", func(m map[string]any) { m["phone"] = "57300123456" }},
		{"amount under 2", "amount", func(m map[string]any) { m["amount"] = "1.99" }},
		{"amount comma", "amount", func(m map[string]any) { m["amount"] = "300,10" }},
		{"amount 3 decimals", "amount", func(m map[string]any) { m["amount"] = 300.105 }},
		{"amount too big", "amount", func(m map[string]any) { m["amount"] = "100000000.00" }},
		{"USD", "currency", func(m map[string]any) { m["currency"] = "USD" }},
		{"BRA", "country", func(m map[string]any) { m["country"] = "BRA" }},
		{"short callback", "callback", func(m map[string]any) { m["callback"] = "https://x.co/cb" }},
		{"callback not a URL", "callback", func(m map[string]any) { m["callback"] = strings.Repeat("x", 40) }},
		{"no transaction", "transaction.id", func(m map[string]any) { delete(m, "transaction") }},
		{"empty transaction.id", "transaction.id", func(m map[string]any) { m["transaction"] = map[string]any{"id": ""} }},
	} {
		st, msg := post(t, s, body(tc.mut))
		if st != http.StatusBadRequest || !strings.Contains(msg, tc.field) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, st, msg, tc.field)
		}
		for _, leak := range []string{"1234567890", "ana.example", "553001234567"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: the answer echoes %s", tc.name, leak)
			}
		}
	}
	if n := s.Accepted("req-v"); n != 0 {
		t.Fatalf("%d payouts from invalid bodies", n)
	}
	// The good body, with a number amount, is accepted; a 30-digit email is
	// not required [ours].
	if st, msg := post(t, s, body(func(m map[string]any) { m["amount"] = json.Number("300.10") })); st != http.StatusOK {
		t.Fatalf("valid body: %d %s", st, msg)
	}
	if tot := s.Totals(); tot.Payouts != 1 || tot.Refused != 18 {
		t.Fatalf("totals %+v", tot)
	}
}

// TestTokensExpire: a token dies after its TTL on the simulator's clock.
func TestTokensExpire(t *testing.T) {
	s, clk, _ := manual(t, sfptest.Config{TokenTTL: time.Minute})
	req, _ := http.NewRequest(http.MethodPost, s.URL()+sfp.PathToken, nil)
	req.SetBasicAuth(sfptest.DefaultClientID, sfptest.DefaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Data struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Data.ExpiresIn != 60 || tok.Data.TokenType != "Bearer" {
		t.Fatalf("%+v", tok)
	}
	get := func(auth string) int {
		r, _ := http.NewRequest(http.MethodGet, s.URL()+sfp.PathPayouts, nil)
		r.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get("Bearer " + tok.Data.AccessToken); st != 200 {
		t.Fatalf("fresh token: %d", st)
	}
	if st := get("Bearer nope"); st != 401 {
		t.Fatalf("unknown token: %d", st)
	}
	clk.Advance(time.Minute)
	if st := get("Bearer " + tok.Data.AccessToken); st != 401 {
		t.Fatalf("expired token: %d", st)
	}
	req, _ = http.NewRequest(http.MethodPost, s.URL()+sfp.PathToken, nil)
	req.SetBasicAuth(sfptest.DefaultClientID, "wrong")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong secret: %d", resp.StatusCode)
	}
	if st := s.TokenStats(); st.Issued != 1 || st.Refused != 1 || st.Expired != 1 || st.Invalid != 1 {
		t.Fatalf("%+v", st)
	}
}

// TestCallbacksRetried: a non-2xx answer is retried, with a bound.
func TestCallbacksRetried(t *testing.T) {
	s, _, c := manual(t, sfptest.Config{WebhookBackoff: time.Millisecond, WebhookRetries: 3})
	sk := newSink(t, sfptest.DefaultWebhookSecret)
	sk.fail = func(n int64) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return 0
	}
	if _, err := c.Create(ctx, request("req-r", "573001234598", sk.url)); err != nil { // one move: onhold
		t.Fatal(err)
	}
	s.Advance(time.Hour)
	waitHooks(t, s)
	if st := s.WebhookStats(); st.Delivered != 1 || st.Attempts != 3 || st.Failed != 0 {
		t.Fatalf("stats %+v: want delivered on the 3rd attempt", st)
	}
	sk.fail = func(int64) int { return http.StatusBadGateway }
	if err := s.SetStatus("req-r", "success"); err != nil {
		t.Fatal(err)
	}
	waitHooks(t, s)
	if st := s.WebhookStats(); st.Failed != 1 || st.Attempts != 3+4 {
		t.Fatalf("stats %+v: want 1+3 attempts then given up", st)
	}
}

// TestFaults: the /_sim/faults endpoint and the knobs it drives.
func TestFaults(t *testing.T) {
	s, _, c := manual(t, sfptest.Config{Seed: 7})
	sk := newSink(t, sfptest.DefaultWebhookSecret)
	postFaults := func(body string) int {
		resp, err := http.Post(s.URL()+"/_sim/faults", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := postFaults(`{"errorRate": 2}`); st != 400 {
		t.Fatalf("rate 2: %d", st)
	}
	if st := postFaults(`{"latency": "-1s"}`); st != 400 {
		t.Fatalf("negative latency: %d", st)
	}
	if st := postFaults(`{"errorRate": 1}`); st != 200 {
		t.Fatalf("%d", st)
	}
	if _, err := c.Find(ctx, "x"); rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("errorRate 1: %v", err)
	}
	if st := postFaults(`{"errorRate": 0, "dropResponseRate": 1, "webhookDuplicateRate": 1}`); st != 200 {
		t.Fatalf("%d", st)
	}
	if f := s.Faults(); f.ErrorRate != 0 || f.DropResponseRate != 1 || f.WebhookDuplicateRate != 1 {
		t.Fatalf("%+v", f)
	}
	if _, err := c.Create(ctx, request("req-f", "573001234598", sk.url)); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("dropped answer: %v", err)
	}
	if n := s.Accepted("req-f"); n != 1 {
		t.Fatalf("the dropped create made %d payouts, want 1", n)
	}
	s.Advance(time.Hour)
	waitHooks(t, s)
	if got := sk.statuses("req-f"); len(got) != 2 {
		t.Fatalf("duplicate rate 1: %v", got)
	}
	s.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	s.SetStatus("req-f", "success")
	waitHooks(t, s)
	if got := sk.statuses("req-f"); len(got) != 2 || s.WebhookStats().Dropped != 1 {
		t.Fatalf("drop rate 1: %v", got)
	}
	s.SetFaults(sfptest.Faults{WebhookDelayRate: 1, WebhookDelay: time.Hour})
	s.SetStatus("req-f", "refunded")
	waitHooks(t, s)
	if got := sk.statuses("req-f"); len(got) != 2 {
		t.Fatalf("a delayed callback arrived early: %v", got)
	}
	s.ReleaseDelayedWebhooks()
	waitHooks(t, s)
	if got := sk.statuses("req-f"); len(got) != 3 || got[2] != "refunded" {
		t.Fatalf("released: %v", got)
	}
	if fc := s.InjectedFaults(); fc.Errors != 1+rail.ListPageRetries || fc.DroppedAnswers != 1 { // the failed page, asked for again
		t.Fatalf("%+v", fc)
	}
}

// TestAnswerShapes: the wrapped create and numeric amounts read the same.
func TestAnswerShapes(t *testing.T) {
	s, _, c := manual(t, sfptest.Config{WrapCreate: true, NumericAmounts: true})
	sk := newSink(t, sfptest.DefaultWebhookSecret)
	p, err := c.Create(ctx, request("req-s", "573001234599", sk.url))
	if err != nil || p.ProviderID == "" {
		t.Fatal(p, err)
	}
	g, err := c.Get(ctx, p.ProviderID)
	if err != nil || g.AmountInCents != 98_000_00 {
		t.Fatal(g, err)
	}
	b, err := c.Balance(ctx)
	if err != nil || b.AmountInCents != sfptest.DefaultBalanceInCents-98_000_00 {
		t.Fatal(b, err)
	}
	h, body, err := s.SignedWebhook("req-s")
	if err != nil || !bytes.Contains(body, []byte(`"amount":98000.00`)) {
		t.Fatalf("%s %v", body, err)
	}
	if _, err := c.Webhooks().Parse(h, body); err != nil {
		t.Fatal(err)
	}
}
