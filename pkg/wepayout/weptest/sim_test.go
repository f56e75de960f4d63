package weptest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

const testCPF = "52998224725"

// receiver collects webhooks; fail says what to answer to the n-th one.
type receiver struct {
	mu    sync.Mutex
	got   []received
	fail  func(n int) int
	srv   *httptest.Server
	calls int
}

type received struct {
	sig  string
	body []byte
}

func newReceiver(t *testing.T, fail func(n int) int) *receiver {
	rc := &receiver{fail: fail}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.calls++
		st := 200
		if rc.fail != nil {
			st = rc.fail(rc.calls)
		}
		if st == 200 {
			rc.got = append(rc.got, received{r.Header.Get("x-webhook-wp-signature"), b})
		}
		rc.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func pix(id string, cents int64, key, hook string) rail.PayoutRequest {
	return rail.PayoutRequest{ID: id, AmountInCents: cents, Currency: "BRL", CallbackURL: hook,
		Payee: rail.Payee{Name: "Maria Souza", LegalIDType: "CPF", LegalID: testCPF, PixKey: key}}
}

func start(t *testing.T, cfg weptest.Config) (*weptest.Server, *wepayout.Client, *weptest.ManualClock) {
	clk := weptest.NewManualClock(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	cfg.Clock = clk
	if cfg.StepJitter == 0 {
		cfg.StepJitter = -1
	}
	s := weptest.NewTestServer(t, cfg)
	return s, s.Client(wepayout.Config{}), clk
}

func call(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestUnauthorized(t *testing.T) {
	s, _, _ := start(t, weptest.Config{})
	for _, key := range []string{"", "wrong", strings.ToUpper(weptest.DefaultAPIKey)} {
		st, m := call(t, "GET", s.URL()+"/v2/payout/payments/1", key, "")
		e, _ := m["error"].(map[string]any)
		if st != 401 || e["code"] != "unauthorized" || e["message"] == "" {
			t.Errorf("key %q: %d %v", key, st, m)
		}
	}
	if st, _ := call(t, "GET", s.URL()+"/v2/payout/payments/1", weptest.DefaultAPIKey, ""); st != 404 {
		t.Errorf("good key, unknown id: %d", st)
	}
}

// TestCreateValidation: each documented rule answers 400 {"message"} and
// creates nothing; the message never echoes the payee's data.
func TestCreateValidation(t *testing.T) {
	s, _, _ := start(t, weptest.Config{})
	base := map[string]any{
		"payment_method": "PIX", "currency": "BRL", "country": "BR", "amount": json.Number("50.34"), "invoice": "inv-v",
		"beneficiary": map[string]any{"name": "Maria", "document": map[string]any{"type": "CPF", "number": testCPF}},
		"pix":         map[string]any{"pix_key": "maria@example.com"},
	}
	bank := map[string]any{"bank_code": "001", "bank_branch": "1234", "account": "123456", "account_digit": "7", "account_type": "checking"}
	for _, tc := range []struct {
		name string
		mut  func(m map[string]any)
		ok   bool
	}{
		{"valid pix", func(m map[string]any) {}, true},
		{"valid bank", func(m map[string]any) {
			delete(m, "pix")
			for k, v := range bank {
				m[k] = v
			}
		}, true},
		{"valid CNPJ", func(m map[string]any) {
			m["beneficiary"] = map[string]any{"name": "Loja", "document": map[string]any{"type": "CNPJ", "number": "11222333000181"}}
		}, true},
		{"boleto", func(m map[string]any) { m["payment_method"] = "BOLETO" }, false},
		{"USD", func(m map[string]any) { m["currency"] = "USD" }, false},
		{"country CO", func(m map[string]any) { m["country"] = "CO" }, false},
		{"amount as a string", func(m map[string]any) { m["amount"] = "50.34" }, false},
		{"three decimals", func(m map[string]any) { m["amount"] = json.Number("1.005") }, false},
		{"exponent", func(m map[string]any) { m["amount"] = json.Number("5e1") }, false},
		{"zero", func(m map[string]any) { m["amount"] = json.Number("0.00") }, false},
		{"negative", func(m map[string]any) { m["amount"] = json.Number("-1") }, false},
		{"no invoice", func(m map[string]any) { delete(m, "invoice") }, false},
		{"101-char name", func(m map[string]any) {
			m["beneficiary"] = map[string]any{"name": strings.Repeat("a", 101), "document": map[string]any{"type": "CPF", "number": testCPF}}
		}, false},
		{"bad CPF", func(m map[string]any) {
			m["beneficiary"] = map[string]any{"name": "Maria", "document": map[string]any{"type": "CPF", "number": "52998224724"}}
		}, false},
		{"bad CNPJ", func(m map[string]any) {
			m["beneficiary"] = map[string]any{"name": "Loja", "document": map[string]any{"type": "CNPJ", "number": "11222333000182"}}
		}, false},
		{"RG", func(m map[string]any) {
			m["beneficiary"] = map[string]any{"name": "Maria", "document": map[string]any{"type": "RG", "number": testCPF}}
		}, false},
		{"pix and bank", func(m map[string]any) {
			for k, v := range bank {
				m[k] = v
			}
		}, false},
		{"neither", func(m map[string]any) { delete(m, "pix") }, false},
		{"bank code 4 digits", func(m map[string]any) {
			delete(m, "pix")
			for k, v := range bank {
				m[k] = v
			}
			m["bank_code"] = "1007"
		}, false},
		{"account type corriente", func(m map[string]any) {
			delete(m, "pix")
			for k, v := range bank {
				m[k] = v
			}
			m["account_type"] = "CORRIENTE"
		}, false},
		{"incomplete bank", func(m map[string]any) {
			delete(m, "pix")
			m["bank_code"] = "001"
		}, false},
		{"other merchant", func(m map[string]any) { m["merchant_id"] = 99 }, false},
		{"own merchant", func(m map[string]any) { m["merchant_id"] = 1234 }, true},
		{"relative notification url", func(m map[string]any) { m["notification_url"] = "/hooks" }, false},
	} {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		tc.mut(m)
		inv := "inv-" + strings.ReplaceAll(tc.name, " ", "-")
		m["invoice"] = inv
		if tc.name == "no invoice" {
			delete(m, "invoice")
		}
		b, _ := json.Marshal(m)
		st, ans := call(t, "POST", s.URL()+"/v2/payout/payments", weptest.DefaultAPIKey, string(b))
		if tc.ok {
			if st != 201 || ans["amount"] != "R$50.34" || ans["invoice"] != inv {
				t.Errorf("%s: %d %v", tc.name, st, ans)
			}
			continue
		}
		msg, _ := ans["message"].(string)
		if st != 400 || msg == "" || strings.Contains(msg, testCPF) || strings.Contains(msg, "maria@") {
			t.Errorf("%s: %d %v, want 400 with a message", tc.name, st, ans)
		}
		if s.Accepted(inv) != 0 {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestSameInvoicePaysTwice: WEpayout documents no idempotency; the
// simulator takes the worst case and its ledger shows it.
func TestSameInvoicePaysTwice(t *testing.T) {
	ctx := context.Background()
	s, c, _ := start(t, weptest.Config{})
	a, err := c.Create(ctx, pix("twice", 1000, "a@example.com", ""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Create(ctx, pix("twice", 1000, "a@example.com", ""))
	if err != nil || a.ProviderID == b.ProviderID {
		t.Fatalf("second create: %+v %v", b, err)
	}
	s.Advance(time.Minute)
	e, _ := s.LedgerEntry("twice")
	if e.Accepted != 2 || e.Paid != 2 || !slices.Equal(s.Duplicates(), []string{"twice"}) || !slices.Equal(s.PaidMoreThanOnce(), []string{"twice"}) {
		t.Fatalf("ledger %+v dup %v paid %v", e, s.Duplicates(), s.PaidMoreThanOnce())
	}
	if tot := s.Totals(); tot.Payments != 2 || tot.Invoices != 1 || tot.Paid != 2 || tot.PaidAmountInCents != 2000 {
		t.Fatalf("totals %+v", tot)
	}
}

// TestRules: the documented table, step by step on the manual clock, seen
// through signed webhooks and reads.
func TestRules(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, nil)
	s, c, clk := start(t, weptest.Config{StepDelay: time.Second})
	type want struct {
		path   []int
		final  payout.Status
		reason string
	}
	cases := map[string]want{
		"payee00@example.com":                  {[]int{2, 3}, payout.StatusApproved, ""},
		"+5511987650004":                       {[]int{2, 4}, payout.StatusFailed, ""},
		"payee05@example.com":                  {[]int{2, 5}, payout.StatusFailed, "WEPAYOUT_5"},
		"payee06@example.com":                  {[]int{2, 6}, payout.StatusCancelled, "WE0001"},
		"payee16@example.com":                  {[]int{2, 6}, payout.StatusCancelled, "WEPAYOUT_6"},
		"payee07@example.com":                  {[]int{7, 2, 3}, payout.StatusApproved, ""},
		"payee99@example.com":                  {[]int{2}, payout.StatusPending, ""},
		"123e4567-e89b-12d3-a456-426614174005": {[]int{2, 5}, payout.StatusFailed, "WEPAYOUT_5"},
	}
	recs := map[string]rail.PayoutRequest{}
	ids, invs := map[string]string{}, map[string]string{}
	i := 0
	for key := range cases {
		i++
		r := pix(fmt.Sprintf("rule-%d", i), int64(1000+i), key, rc.srv.URL)
		p, err := c.Create(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		recs[r.ID], ids[key], invs[key] = r, p.ProviderID, r.ID
	}
	// A bank payment: the account number's last digits rule.
	br := rail.PayoutRequest{ID: "rule-bank", AmountInCents: 777, Currency: "BRL", CallbackURL: rc.srv.URL,
		Payee: rail.Payee{Name: "Loja", LegalIDType: "CNPJ", LegalID: "11222333000181", BankCode: "341", Branch: "1",
			AccountNumber: "900004", AccountDigit: "1", AccountType: "CORRIENTE"}}
	bp, err := c.Create(ctx, br)
	if err != nil {
		t.Fatal(err)
	}
	recs[br.ID] = br
	for range 5 {
		clk.Advance(time.Second)
		s.Tick()
		// Workers deliver concurrently: wait, so each payment's events
		// arrive in order.
		if err := s.WaitWebhooks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string][]int{}
	for _, h := range rc.all() {
		var w struct{ Invoice string }
		_ = json.Unmarshal(h.body, &w)
		hdr := http.Header{}
		hdr.Set("x-webhook-wp-signature", h.sig)
		ev, err := wepayout.VerifyWebhook(hdr, h.body, recs[w.Invoice], weptest.DefaultAPIKey)
		if err != nil {
			t.Fatalf("a simulator webhook does not verify against our record: %v (%s)", err, h.body)
		}
		seen[ev.Invoice] = append(seen[ev.Invoice], ev.Status.ID)
		if ev.Status.ID == 6 && ev.Invoice == recs[ev.Invoice].ID && ev.StatusDetail != nil && ev.StatusDetail.Code != "WE0001" {
			t.Errorf("detail %+v", ev.StatusDetail)
		}
	}
	for key, w := range cases {
		inv := invs[key]
		if !slices.Equal(seen[inv], w.path) {
			t.Errorf("key %s: webhooks %v, want %v", key, seen[inv], w.path)
		}
		g, err := c.Get(ctx, ids[key])
		if err != nil || g.Status != w.final || g.Reason != w.reason {
			t.Errorf("key %s: read %q %q %v, want %q %q", key, g.Status, g.Reason, err, w.final, w.reason)
		}
	}
	if g, _ := c.Get(ctx, bp.ProviderID); g.Status != payout.StatusFailed || !slices.Equal(seen["rule-bank"], []int{2, 4}) {
		t.Errorf("bank account ending 04: %q %v", g.Status, seen["rule-bank"])
	}
}

// TestWebhookRetries: a non-2xx is retried, a bounded number of times.
func TestWebhookRetries(t *testing.T) {
	ctx := context.Background()
	flaky := newReceiver(t, func(n int) int {
		if n <= 2 {
			return 500
		}
		return 200
	})
	s, c, clk := start(t, weptest.Config{WebhookRetries: 3, WebhookBackoff: time.Millisecond})
	if _, err := c.Create(ctx, pix("retry-1", 100, "payee99@example.com", flaky.srv.URL)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	s.Tick()
	_ = s.WaitWebhooks(ctx)
	if st := s.WebhookStats(); st.Delivered != 1 || st.Attempts != 3 || len(flaky.all()) != 1 {
		t.Fatalf("flaky receiver: %+v, %d received", st, len(flaky.all()))
	}
	down := newReceiver(t, func(int) int { return 503 })
	if _, err := c.Create(ctx, pix("retry-2", 100, "payee99@example.com", down.srv.URL)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	s.Tick()
	_ = s.WaitWebhooks(ctx)
	if st := s.WebhookStats(); st.Failed != 1 || st.Attempts != 3+4 {
		t.Fatalf("down receiver: %+v, want 4 attempts then failed", st)
	}
}

// TestFaults: the knobs, each against its observable effect.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, nil)
	s, c, clk := start(t, weptest.Config{Seed: 7})

	s.SetFaults(weptest.Faults{DropResponseRate: 1})
	_, err := c.Create(ctx, pix("drop-1", 100, "payee99@example.com", rc.srv.URL))
	if rail.ClassOf(err) != rail.OutcomeUnknown || s.Accepted("drop-1") != 1 {
		t.Fatalf("dropped answer: %v, accepted %d", err, s.Accepted("drop-1"))
	}
	s.SetFaults(weptest.Faults{ErrorRate: 1})
	if _, err := c.Get(ctx, "100001"); rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("error rate: %v", err)
	}
	if _, err := c.Create(ctx, pix("err-1", 100, "payee99@example.com", "")); rail.ClassOf(err) != rail.OutcomeUnknown || s.Accepted("err-1") != 0 {
		t.Fatalf("503 on a create: %v (nothing applied: %d)", err, s.Accepted("err-1"))
	}
	s.SetFaults(weptest.Faults{TooManyRequestsRate: 1})
	if _, err := c.Find(ctx, "x"); rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("429 on a read: %v", err)
	}
	s.SetFaults(weptest.Faults{Latency: 500 * time.Millisecond})
	quick := s.Client(wepayout.Config{HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	if _, err := quick.Create(ctx, pix("slow-1", 100, "payee99@example.com", "")); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("timed-out create: %v", err)
	}
	s.SetFaults(weptest.Faults{WebhookDuplicateRate: 1})
	if _, err := c.Create(ctx, pix("dup-1", 100, "payee99@example.com", rc.srv.URL)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	s.Tick()
	_ = s.WaitWebhooks(ctx)
	n := 0
	for _, h := range rc.all() {
		if strings.Contains(string(h.body), `"dup-1"`) {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("duplicated webhook arrived %d times", n)
	}
	s.SetFaults(weptest.Faults{WebhookDropRate: 1})
	before := len(rc.all())
	if _, err := c.Create(ctx, pix("gone-1", 100, "payee99@example.com", rc.srv.URL)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	s.Tick()
	_ = s.WaitWebhooks(ctx)
	if len(rc.all()) != before || s.WebhookStats().Dropped == 0 {
		t.Fatalf("dropped webhook arrived")
	}
	s.SetFaults(weptest.Faults{WebhookDelayRate: 1, WebhookDelay: time.Hour})
	if _, err := c.Create(ctx, pix("late-1", 100, "payee99@example.com", rc.srv.URL)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	s.Tick()
	_ = s.WaitWebhooks(ctx)
	if len(rc.all()) != before || s.WebhookStats().Delayed != 1 {
		t.Fatalf("delayed webhook arrived early: %+v", s.WebhookStats())
	}
	s.ReleaseDelayedWebhooks()
	_ = s.WaitWebhooks(ctx)
	if len(rc.all()) != before+1 {
		t.Fatalf("released webhook did not arrive")
	}
	if fc := s.InjectedFaults(); fc.DroppedAnswers != 1 || fc.Errors != 2 || fc.TooManyRequests != 1 { // a 429'd page is not asked for again at once
		t.Fatalf("fault counts %+v", fc)
	}
}

// TestListFilters: the listing's filters and pages.
func TestListFilters(t *testing.T) {
	ctx := context.Background()
	s, c, clk := start(t, weptest.Config{})
	for i := range 7 {
		key := "payee00@example.com"
		if i%2 == 1 {
			key = "payee99@example.com"
		}
		if _, err := c.Create(ctx, pix(fmt.Sprintf("list-%d", i), 100, key, "")); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(24 * time.Hour) // 2026-03-03 in Sao Paulo
	s.Tick()
	if _, err := c.Create(ctx, pix("list-next-day", 100, "payee00@example.com", "")); err != nil {
		t.Fatal(err)
	}
	pg, err := c.ListPayments(ctx, wepayout.ListQuery{StatusID: 3, PerPage: 2, Page: 2})
	if err != nil || len(pg.Data) != 2 || pg.Meta.Total != 4 || pg.Meta.LastPage != 2 || pg.Meta.CurrentPage != 2 {
		t.Fatalf("status 3, page 2 of 2: %+v %v", pg, err)
	}
	day := time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)
	pg, err = c.ListPayments(ctx, wepayout.ListQuery{CreatedAtStart: day, CreatedAtEnd: day})
	if err != nil || len(pg.Data) != 1 || pg.Data[0].OurID() != "list-next-day" {
		t.Fatalf("one day: %+v %v", pg, err)
	}
	if st, _ := call(t, "GET", s.URL()+"/v2/payout/payments?per_page=101", weptest.DefaultAPIKey, ""); st != 400 {
		t.Fatalf("per_page 101: %d", st)
	}
	if st, _ := call(t, "GET", s.URL()+"/v2/payout/payments?created_at_start=03/03/2026", weptest.DefaultAPIKey, ""); st != 400 {
		t.Fatalf("bad date: %d", st)
	}
	n := 0
	for _, err := range c.Payments(ctx, wepayout.ListQuery{PerPage: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 8 {
		t.Fatalf("walked %d payments, want 8", n)
	}
}

// TestDebugEndpoints: the ledger and the fault knobs over HTTP.
func TestDebugEndpoints(t *testing.T) {
	ctx := context.Background()
	s, c, _ := start(t, weptest.Config{})
	for range 2 {
		if _, err := c.Create(ctx, pix("dbg-1", 250, "payee00@example.com", "")); err != nil {
			t.Fatal(err)
		}
	}
	st, m := call(t, "GET", s.URL()+"/_sim/ledger", "", "")
	inv, _ := m["invoices"].(map[string]any)
	e, _ := inv["dbg-1"].(map[string]any)
	if st != 200 || e["accepted"] != float64(2) || fmt.Sprint(m["duplicates"]) != "[dbg-1]" {
		t.Fatalf("ledger %d %v", st, m)
	}
	st, m = call(t, "POST", s.URL()+"/_sim/faults", "", `{"errorRate": 0.25, "latency": "10ms"}`)
	if st != 200 || m["errorRate"] != 0.25 || s.Faults().Latency != 10*time.Millisecond {
		t.Fatalf("faults %d %v", st, m)
	}
	if st, _ := call(t, "POST", s.URL()+"/_sim/faults", "", `{"errorRate": 2}`); st != 400 || s.Faults().ErrorRate != 0.25 {
		t.Fatalf("a rate of 2 was taken")
	}
	s.SetFaults(weptest.Faults{})
	if st, m := call(t, "POST", s.URL()+"/_sim/advance?by=1m", "", ""); st != 200 || m["steps"] != float64(4) {
		t.Fatalf("advance %d %v", st, m)
	}
	if st, _ := call(t, "POST", s.URL()+"/_sim/status?invoice=dbg-1&status=6:WE0002", "", ""); st != 200 {
		t.Fatalf("status %d", st)
	}
	if st, m := call(t, "GET", s.URL()+"/_sim/stats", "", ""); st != 200 || m["totals"] == nil {
		t.Fatalf("stats %d %v", st, m)
	}
}
