package wepayout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// fake answers every call with fn. Its client's timeout is long: an
// answer that comes late on a loaded box is still an answer (at 300ms a
// 400 that came late was a timeout, and OutcomeUnknown); fakeTimeout
// gives the short one the timeout tests want.
func fake(t *testing.T, fn http.HandlerFunc) *wepayout.Client {
	t.Helper()
	return fakeTimeout(t, 30*time.Second, fn)
}

func fakeTimeout(t *testing.T, timeout time.Duration, fn http.HandlerFunc) *wepayout.Client {
	t.Helper()
	ts := httptest.NewServer(fn)
	t.Cleanup(ts.Close)
	c, err := wepayout.New(wepayout.Config{BaseURL: ts.URL, APIKey: "k", HTTPClient: &http.Client{Timeout: timeout}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func classOf(t *testing.T, err error) (*rail.Error, rail.Class) {
	t.Helper()
	var re *rail.Error
	if !errors.As(err, &re) {
		t.Fatalf("%v is not a *rail.Error", err)
	}
	return re, re.Class
}

// TestErrorClasses: each failure of each call gets the seam's class.
func TestErrorClasses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		call   string // create, get, find
		want   rail.Class
	}{
		{"500 create", 500, `{"message":"Server Error"}`, "create", rail.OutcomeUnknown},
		{"502 create", 502, `<html>bad gateway</html>`, "create", rail.OutcomeUnknown},
		{"503 create", 503, ``, "create", rail.OutcomeUnknown},
		{"429 create", 429, `{"message":"Too Many Attempts."}`, "create", rail.OutcomeUnknown},
		{"400 create", 400, `{"message":"The beneficiary.document.number field is invalid."}`, "create", rail.Rejected},
		// Our invoice refused as already used: WEpayout holds a payment
		// under it, never a refusal of the payee.
		{"400 create, invoice taken", 400, `{"message":"The invoice has already been taken."}`, "create", rail.AlreadyExists},
		{"422 create, invoice taken", 422, `{"message":"The invoice has already been taken. (and 1 more error)","errors":{"invoice":["The invoice has already been taken."]}}`, "create", rail.AlreadyExists},
		{"422 create, duplicate invoice", 422, `{"message":"Duplicate invoice"}`, "create", rail.AlreadyExists},
		// Laravel's summary names the first failed field only: a repeat
		// refused for the balance its first POST consumed and for its
		// invoice, the invoice's refusal in the errors object alone.
		{"422 create, invoice taken after another error", 422, `{"message":"The amount exceeds the available balance. (and 1 more error)","errors":{"amount":["The amount exceeds the available balance."],"invoice":["The invoice has already been taken."]}}`, "create", rail.AlreadyExists},
		{"422 create, errors without the invoice", 422, `{"message":"The amount exceeds the available balance. (and 1 more error)","errors":{"amount":["The amount exceeds the available balance."],"beneficiary.document.number":["The beneficiary.document.number has already been used today."]}}`, "create", rail.Rejected},
		{"422 create", 422, `{"message":"invalid"}`, "create", rail.Rejected},
		{"408 create", 408, ``, "create", rail.OutcomeUnknown},
		{"425 create", 425, ``, "create", rail.OutcomeUnknown},
		{"401 create", 401, `{"error":{"code":"unauthorized","message":"Unauthenticated."}}`, "create", rail.Unauthorized},
		{"403 create", 403, `{"message":"IP not allowed"}`, "create", rail.Unauthorized},
		{"404 create", 404, `{"message":"Not Found"}`, "create", rail.Unauthorized},
		{"500 get", 500, ``, "get", rail.Retryable},
		{"503 find", 503, ``, "find", rail.Retryable},
		{"429 get", 429, ``, "get", rail.Retryable},
		{"401 get", 401, `{"error":{"code":"unauthorized","message":"x"}}`, "get", rail.Unauthorized},
		{"403 find", 403, ``, "find", rail.Unauthorized},
		{"404 get", 404, `{"message":"Payment not found."}`, "get", rail.Permanent},
		{"400 find", 400, `{"message":"bad date"}`, "find", rail.Permanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			var err error
			switch tc.call {
			case "create":
				_, err = c.Create(ctx, pixRequest("req-1", 100))
			case "get":
				_, err = c.Get(ctx, "42")
			case "find":
				_, err = c.Find(ctx, "req-1")
			}
			re, cl := classOf(t, err)
			if cl != tc.want || re.HTTPStatus != tc.status || re.Rail != rail.WEpayout {
				t.Fatalf("%v: class %s status %d, want %s %d", err, cl, re.HTTPStatus, tc.want, tc.status)
			}
			if tc.status == 401 && tc.body != "" && re.Code != wepayout.CodeUnauthorized {
				t.Fatalf("401 code %q", re.Code)
			}
		})
	}
}

// TestTransportClasses: a create whose connection breaks after sending is
// OutcomeUnknown; a refused connection sent nothing; reads are Retryable.
func TestTransportClasses(t *testing.T) {
	ctx := context.Background()
	slow := fakeTimeout(t, 300*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then net/http sees the client leave
		<-r.Context().Done()               // no answer before the client's timeout, however late it runs
	})
	if _, err := slow.Create(ctx, pixRequest("req-t", 100)); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Errorf("timed-out create: %v (%s), want outcome_unknown", err, rail.ClassOf(err))
	}
	if _, err := slow.Get(ctx, "1"); rail.ClassOf(err) != rail.Retryable {
		t.Errorf("timed-out get: %v (%s), want retryable", err, rail.ClassOf(err))
	}
	reset := fake(t, func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	if _, err := reset.Create(ctx, pixRequest("req-r", 100)); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Errorf("reset create: %v (%s), want outcome_unknown", err, rail.ClassOf(err))
	}
	garbled := fake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201); io.WriteString(w, `{"id":`) })
	if _, err := garbled.Create(ctx, pixRequest("req-g", 100)); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Errorf("unreadable 201 to a create: %v (%s), want outcome_unknown", err, rail.ClassOf(err))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	refused, _ := wepayout.New(wepayout.Config{BaseURL: "http://" + addr, APIKey: "k"})
	if _, err := refused.Create(ctx, pixRequest("req-x", 100)); rail.ClassOf(err) != rail.Retryable {
		t.Errorf("refused connection on a create: %v (%s), want retryable (nothing was sent)", err, rail.ClassOf(err))
	}
}

// TestErrorsMaskPersonalData: a provider message echoing the payee's data
// never reaches our errors.
func TestErrorsMaskPersonalData(t *testing.T) {
	r := pixRequest("req-pii", 100)
	r.Payee.PixKey = "+5511987654321"
	c := fake(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"message":"document %s and pix key %s rejected; account 00012345-6; ana@example.com; key 123e4567-e89b-12d3-a456-426614174000"}`, testCPF, "+5511987654321")
	})
	_, err := c.Create(context.Background(), r)
	msg := err.Error()
	for _, pii := range []string{testCPF, "5511987654321", "00012345", "ana@example.com", "426614174000"} {
		if strings.Contains(msg, pii) {
			t.Errorf("error %q carries %q", msg, pii)
		}
	}
	if rail.ClassOf(err) != rail.Rejected {
		t.Errorf("class %s", rail.ClassOf(err))
	}
	// The code of an error answer goes into the REJECTED event's
	// reasonCode: masked and bounded like the message (an event past the
	// status topic's max.message.bytes would never be written).
	for _, code := range []string{"pix_key_" + testCPF, strings.Repeat("E", 64<<10)} {
		c := fake(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":"refused"}}`, code)
		})
		_, err := c.Create(context.Background(), pixRequest("req-pii-code", 100))
		re, cl := classOf(t, err)
		if cl != rail.Rejected || strings.Contains(re.Code, testCPF) || len(re.Code) > 300 || len(err.Error()) > 1000 {
			t.Errorf("code of %d bytes: rail error code %.80q (%d bytes), class %s", len(code), re.Code, len(re.Code), cl)
		}
	}
	// A code that reads as one is kept as WEpayout wrote it.
	for _, code := range []string{"WE0001", "invalid_pix_key"} {
		c := fake(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":"refused"}}`, code)
		})
		_, err := c.Create(context.Background(), pixRequest("req-pii-code", 100))
		if re, _ := classOf(t, err); re.Code != code {
			t.Errorf("code %q became %q", code, re.Code)
		}
	}
	// A locally refused payee: the reasons, not the values.
	bad := pixRequest("req-pii2", 100)
	bad.Payee.LegalID = "52998224724"
	bad.Payee.PixKey = "not a key"
	_, err = c.Create(context.Background(), bad)
	if err == nil || strings.Contains(err.Error(), "52998224724") || strings.Contains(err.Error(), "not a key") || rail.ClassOf(err) != rail.Rejected {
		t.Errorf("locally refused payee: %v", err)
	}
}

// TestCreateBody: what goes on the wire.
func TestCreateBody(t *testing.T) {
	var got []map[string]any
	var raws []string
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		raws = append(raws, string(b))
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		_ = dec.Decode(&m)
		got = append(got, m)
		if r.Header.Get("Authorization") != "Bearer k" || r.URL.Path != "/v2/payout/payments" || r.Method != "POST" {
			t.Errorf("%s %s auth %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"id": 77, "invoice": %q, "amount": "R$50.34", "status": {"id": 7, "name": "Awaiting"}}`, m["invoice"])
	})
	ctx := context.Background()
	if _, err := c.Create(ctx, pixRequest("req-pix", 5034)); err != nil {
		t.Fatal(err)
	}
	br := bankRequest("req-bank", 29, "12345678")
	br.Payee.AccountType = "AHORROS"
	br.Payee.BranchDigit = "X"
	br.CallbackURL = "https://hooks.example/wepayout"
	if _, err := c.Create(ctx, br); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raws[0], `"amount":50.34`) || !strings.Contains(raws[1], `"amount":0.29`) {
		t.Fatalf("amounts are not decimal reais numbers: %s / %s", raws[0], raws[1])
	}
	p := got[0]
	if p["payment_method"] != "PIX" || p["currency"] != "BRL" || p["country"] != "BR" || p["invoice"] != "req-pix" {
		t.Errorf("pix body %v", p)
	}
	if pix, _ := p["pix"].(map[string]any); pix["pix_key"] != "maria.souza00@example.com" {
		t.Errorf("pix %v", p["pix"])
	}
	for _, k := range []string{"bank_code", "account", "account_type"} {
		if _, ok := p[k]; ok {
			t.Errorf("a PIX payment carries %s", k)
		}
	}
	b := got[1]
	if _, ok := b["pix"]; ok {
		t.Error("a bank payment carries pix")
	}
	if b["bank_code"] != "001" || b["bank_branch"] != "1234" || b["bank_branch_digit"] != "X" || b["account"] != "12345678" ||
		b["account_digit"] != "9" || b["account_type"] != "savings" || b["notification_url"] != "https://hooks.example/wepayout" {
		t.Errorf("bank body %v", b)
	}
	ben := b["beneficiary"].(map[string]any)
	if doc := ben["document"].(map[string]any); doc["type"] != "CNPJ" || doc["number"] != testCNPJ || ben["name"] != "Loja Exemplo Ltda" {
		t.Errorf("beneficiary %v", ben)
	}
}

// TestMerchantAndNotificationDefaults: Config.MerchantID and
// NotificationURL fill the body.
func TestMerchantAndNotificationDefaults(t *testing.T) {
	var body string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		io.WriteString(w, `{"id": 1, "invoice": "a", "amount": "R$1.00", "status": {"id": 1, "name": "Created"}}`)
	}))
	defer ts.Close()
	c, err := wepayout.New(wepayout.Config{BaseURL: ts.URL, APIKey: "k", MerchantID: "1234", NotificationURL: "https://us.example/webhooks/wepayout"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(context.Background(), pixRequest("a", 100)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `"merchant_id":1234`) || !strings.Contains(body, `"notification_url":"https://us.example/webhooks/wepayout"`) {
		t.Fatalf("body %s", body)
	}
	for _, bad := range []wepayout.Config{{}, {APIKey: "k", BaseURL: "ftp://x"}, {APIKey: "k", MerchantID: "12a"},
		{APIKey: "k", NotificationURL: "/relative"}, {APIKey: "k", PageSize: 101}} {
		if _, err := wepayout.New(bad); !errors.Is(err, wepayout.ErrConfig) {
			t.Errorf("New(%v) = %v, want ErrConfig", bad, err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", wepayout.Config{APIKey: "secret-key"}, wepayout.Config{APIKey: "secret-key"}, c); strings.Contains(s, "secret-key") || strings.Contains(s, "\"k\"") {
		t.Errorf("a config or client prints its key: %s", s)
	}
}

// TestAmountShapesThroughTheClient: the create answer's "R$43.34" and GET's
// integer cents, and the other shapes, all read as the same cents.
func TestAmountShapesThroughTheClient(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ create, get string }{
		{`"R$43.34"`, `4334`},    // the documented pair
		{`43.34`, `"R$ 43,34"`},  // the other way round
		{`"43.34"`, `"R$43.34"`}, // strings both
		{`4334`, `43.34`},        // numbers both
	} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				w.WriteHeader(201)
				fmt.Fprintf(w, `{"id": 9, "invoice": "inv", "amount": %s, "status": {"id": 7, "name": "Awaiting"}}`, tc.create)
				return
			}
			fmt.Fprintf(w, `{"id": 9, "external_id": "inv", "amount": %s, "status": {"id": "2", "name": "Processing"}, "created_at": "2024-06-13T10:00:00.000000Z"}`, tc.get)
		})
		p, err := c.Create(ctx, pixRequest("inv", 4334))
		if err != nil || p.AmountInCents != 4334 || p.ProviderID != "9" || p.Status != payout.StatusPending || p.ID != "inv" {
			t.Errorf("create answering %s: %+v %v", tc.create, p, err)
		}
		g, err := c.Get(ctx, "9")
		if err != nil || g.AmountInCents != 4334 || g.Status != payout.StatusPending || g.ID != "inv" || g.ProviderStatus != "2" {
			t.Errorf("get answering %s: %+v %v", tc.get, g, err)
		}
	}
}

// TestFindPagesAndFilters: Find reads every page of external_id's listing,
// keeps only our id, and refuses to prove absence from items without one.
func TestFindPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		q := r.URL.Query()
		if q.Get("external_id") != "inv-1" || q.Get("per_page") != "100" {
			t.Errorf("query %v", q)
		}
		switch q.Get("page") {
		case "1":
			io.WriteString(w, `{"data": [{"id": 1, "external_id": "inv-1", "amount": 100, "status": {"id": 3}}, {"id": 2, "external_id": "inv-10", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 1, "last_page": 2, "per_page": 100, "total": 3}}`)
		case "2":
			io.WriteString(w, `{"data": [{"id": 3, "external_id": "inv-1", "amount": 100, "status": {"id": 1}}, {"id": 1, "external_id": "inv-1", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 2, "last_page": 2, "per_page": 100, "total": 3}}`)
		default:
			t.Errorf("page %s read", q.Get("page"))
			io.WriteString(w, `{"data": []}`)
		}
	})
	found, err := c.Find(ctx, "inv-1")
	if err != nil || len(found) != 2 || found[0].ProviderID != "1" || found[1].ProviderID != "3" || calls.Load() != 2 {
		t.Fatalf("find: %+v %v after %d calls: want payments 1 and 3 (a prefix match and a repeat dropped)", found, err, calls.Load())
	}
	blind := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data": [{"id": 5, "amount": 100, "status": {"id": 1}}], "meta": {"current_page": 1, "last_page": 1}}`)
	})
	if got, err := blind.Find(ctx, "inv-1"); err == nil {
		t.Fatalf("find over items without external_id proved absence: %+v", got)
	}
	// No meta: read until a short page.
	var pages atomic.Int32
	nometa := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if pages.Add(1) == 1 {
			var items []string
			for i := range 100 {
				items = append(items, fmt.Sprintf(`{"id": %d, "external_id": "x", "amount": 1, "status": {"id": 1}}`, i+1))
			}
			fmt.Fprintf(w, `{"data": [%s]}`, strings.Join(items, ","))
			return
		}
		io.WriteString(w, `{"data": [{"id": 500, "external_id": "x", "amount": 1, "status": {"id": 1}}]}`)
	})
	if got, err := nometa.Find(ctx, "x"); err != nil || len(got) != 101 || pages.Load() != 2 {
		t.Fatalf("find without meta: %d payouts %v in %d pages", len(got), err, pages.Load())
	}
}

// TestListQuery: dates are Sao Paulo days; From/To narrow the days.
func TestListQuery(t *testing.T) {
	var q []string
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		q = append(q, r.URL.RawQuery)
		io.WriteString(w, `{"data": [
			{"id": 1, "external_id": "a", "amount": 1, "status": {"id": 3}, "created_at": "2026-03-02T02:30:00.000000Z"},
			{"id": 2, "external_id": "b", "amount": 1, "status": {"id": 3}, "created_at": "2026-03-02T04:00:00.000000Z"}],
			"meta": {"current_page": 1, "last_page": 1}}`)
	})
	// 2026-03-02 02:00 UTC is still 2026-03-01 in Sao Paulo (UTC-3).
	from := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	to := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
	var ids []string
	for p, err := range c.List(context.Background(), rail.ListFilter{From: from, To: to}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ProviderID)
	}
	if len(ids) != 1 || ids[0] != "1" {
		t.Errorf("listed %v, want only payment 1 within [From, To]", ids)
	}
	if !strings.Contains(q[0], "created_at_start=2026-03-01") || !strings.Contains(q[0], "created_at_end=2026-03-02") {
		t.Errorf("query %s: want Sao Paulo days", q[0])
	}
}

// TestStatusesThroughTheSimulator: the mapping, reasons and the unknown
// counter, on payments the simulator moved.
func TestStatusesThroughTheSimulator(t *testing.T) {
	ctx := context.Background()
	var unknown []int
	sim, c, _ := newSim(t, weptest.Config{}, wepayout.Config{OnUnknownStatus: func(id int) { unknown = append(unknown, id) }})
	for _, tc := range []struct {
		set    string
		want   payout.Status
		reason string
	}{
		{"1", payout.StatusPending, ""}, {"2", payout.StatusPending, ""}, {"7", payout.StatusPending, ""},
		{"3", payout.StatusApproved, ""}, {"4", payout.StatusFailed, ""}, {"5", payout.StatusFailed, "WEPAYOUT_5"},
		{"6", payout.StatusCancelled, "WEPAYOUT_6"}, {"6:WE0001", payout.StatusCancelled, "WE0001"},
		{"42", "", ""},
	} {
		id := "st-" + strings.ReplaceAll(tc.set, ":", "-")
		p, err := c.Create(ctx, pixRequest(id, 1000))
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.SetStatus(id, tc.set); err != nil {
			t.Fatal(err)
		}
		g, err := c.Get(ctx, p.ProviderID)
		if err != nil || g.Status != tc.want || g.Reason != tc.reason {
			t.Errorf("status %s: %q %q %v, want %q %q", tc.set, g.Status, g.Reason, err, tc.want, tc.reason)
		}
	}
	if c.UnknownStatuses() != 1 || len(unknown) != 1 || unknown[0] != 42 {
		t.Errorf("unknown statuses counted %d %v, want 1 [42]", c.UnknownStatuses(), unknown)
	}
}

// TestBalance reads the simulator's balance; a create debits it.
func TestBalance(t *testing.T) {
	ctx := context.Background()
	sim, c, _ := newSim(t, weptest.Config{BalanceInCents: 1_000_00}, wepayout.Config{MerchantID: "1234"})
	if _, err := c.Create(ctx, pixRequest("bal-1", 250_00)); err != nil {
		t.Fatal(err)
	}
	b, err := c.Balance(ctx)
	if err != nil || b.AvailableBalance != 750_00 || b.ReserveBalance != 250_00 || b.Balance != 1_000_00 {
		t.Fatalf("balance %+v %v", b, err)
	}
	if sim.BalanceInCents() != 750_00 {
		t.Fatalf("sim balance %d", sim.BalanceInCents())
	}
	other := sim.Client(wepayout.Config{MerchantID: "999"})
	if _, err := other.Balance(ctx); err == nil {
		t.Fatal("balance of another merchant")
	}
	none := sim.Client(wepayout.Config{})
	if _, err := none.Balance(ctx); !errors.Is(err, wepayout.ErrInvalidRequest) {
		t.Fatalf("balance without a merchant id: %v", err)
	}
}

// TestWalkStopsOnARepeatingPage: a server that ignores page and always
// answers the same full page without meta must not loop us forever, and
// Find must not prove anything from it.
func TestWalkStopsOnARepeatingPage(t *testing.T) {
	var calls atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 5 {
			io.WriteString(w, `{"data": []}`)
			return
		}
		var items []string
		for i := range 100 {
			items = append(items, fmt.Sprintf(`{"id": %d, "external_id": "other", "amount": 1, "status": {"id": 1}}`, i+1))
		}
		fmt.Fprintf(w, `{"data": [%s]}`, strings.Join(items, ","))
	})
	got, err := c.Find(context.Background(), "mine")
	if err == nil || calls.Load() != 2 {
		t.Fatalf("find over a repeating page: %v %v after %d calls, want an error after 2", got, err, calls.Load())
	}
}

// TestFindRefusesAnIDInAnotherCase: a listed payment naming our id in
// another case or with spaces may be ours: Find fails rather than prove
// the payee absent.
func TestFindRefusesAnIDInAnotherCase(t *testing.T) {
	for _, ext := range []string{"INV-1", " inv-1"} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"data": [{"id": 1, "external_id": %q, "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 1, "last_page": 1}}`, ext)
		})
		if got, err := c.Find(context.Background(), "inv-1"); err == nil || rail.ClassOf(err) != rail.Permanent {
			t.Fatalf("external_id %q: %+v %v, want a Permanent failure", ext, got, err)
		}
	}
}

// A create answered 2xx with a payment that names another invoice (a
// gateway's or a cache's answer to another call, or a provider that
// "deduplicates" by payee and amount and returns an existing payment) is
// not our payout: adopted, the dispatcher handed off another request's
// payment as ours, SUBMITTED named it, and the tracker, whose polls read
// that payment under another invoice, refused to emit anything for it: the
// payee stayed SUBMITTED, unpaid, polled every 10 s for ever. Its outcome
// is unknown: the lookup by our own id decides. One that names our id in
// another case or with spaces says so (Echo): WEpayout may keep our id in
// that form and filter by it alone, so the lookup must try that form too.
func TestCreateAnsweredWithAnotherInvoiceIsNotOurs(t *testing.T) {
	for _, tc := range []struct{ invoice, echo string }{
		{"someone-else", ""},
		{"INV-a", "INV-a"},
		{" inv-A ", " inv-A "},
	} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"id": 9, "invoice": %q, "amount": "R$43.34", "status": {"id": 1, "name": "Created"}}`, tc.invoice)
		})
		p, err := c.Create(context.Background(), pixRequest("inv-A", 4334))
		if err == nil {
			t.Fatalf("create answered with invoice %q adopted as ours: %+v", tc.invoice, p)
		}
		var re *rail.Error
		if !errors.As(err, &re) || re.Class != rail.OutcomeUnknown || re.Echo != tc.echo {
			t.Fatalf("invoice %q: %#v, want an unknown outcome with Echo %q", tc.invoice, err, tc.echo)
		}
	}
}
