package smartfastpay_test

import (
	"context"
	"encoding/json"
	"errors"
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
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

var ctx = context.Background()

func railErr(t *testing.T, err error) *rail.Error {
	t.Helper()
	var re *rail.Error
	if !errors.As(err, &re) {
		t.Fatalf("%v (%T) is not a *rail.Error", err, err)
	}
	return re
}

// manualSim is a simulator on a manual clock, and a client on the same
// clock.
func manualSim(t *testing.T, cfg sfptest.Config) (*sfptest.Server, *sfptest.ManualClock, *sfp.Client) {
	t.Helper()
	clk := sfptest.NewManualClock(time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC))
	cfg.Clock = clk
	s := sfptest.NewTestServer(t, cfg)
	return s, clk, s.Client(nil)
}

func TestCreateBody(t *testing.T) {
	c, err := sfp.New(sfp.Config{ClientID: "id", ClientSecret: "secret", CallbackURL: "https://example.com/webhooks/smartfastpay"})
	if err != nil {
		t.Fatal(err)
	}
	r := validRequest("")("req-1", 12345-sfptest.MinAmountInCents)
	b, rerr := c.Body(r)
	if rerr != nil {
		t.Fatal(rerr)
	}
	raw, _ := json.Marshal(b)
	want := `{"customer_id":"12345678909","name":"Ana Gómez","email":"ana@example.com","document":"12345678909","phone":"573001234567","amount":123.45,"currency":"COP","country":"COL","callback":"https://example.com/webhooks/smartfastpay","transaction":{"id":"req-1"}}`
	if string(raw) != want {
		t.Fatalf("body\n got %s\nwant %s", raw, want)
	}
	r.Payee.CustomerID = "cust-9"
	if b, _ := c.Body(r); b.CustomerID != "cust-9" {
		t.Fatalf("customer_id = %q, want the marketplace's id when given", b.CustomerID)
	}
	for name, mut := range map[string]func(*rail.PayoutRequest){
		"USD":        func(r *rail.PayoutRequest) { r.Currency = "USD" },
		"zero":       func(r *rail.PayoutRequest) { r.AmountInCents = 0 },
		"negative":   func(r *rail.PayoutRequest) { r.AmountInCents = -5 },
		"comma id":   func(r *rail.PayoutRequest) { r.ID = "a,b" },
		"long id":    func(r *rail.PayoutRequest) { r.ID = strings.Repeat("a", 65) },
		"empty id":   func(r *rail.PayoutRequest) { r.ID = "" },
		"unicode id": func(r *rail.PayoutRequest) { r.ID = "reqé" },
	} {
		bad := r
		mut(&bad)
		if _, err := c.Create(ctx, bad); err == nil {
			t.Errorf("%s: created", name)
		} else if cl := rail.ClassOf(err); cl != rail.Rejected && cl != rail.Permanent {
			t.Errorf("%s: class %s", name, cl)
		}
	}
	noCB, _ := sfp.New(sfp.Config{ClientID: "id", ClientSecret: "secret"})
	if _, err := noCB.Create(ctx, r); !errors.Is(err, sfp.ErrInvalidRequest) {
		t.Fatalf("no callback URL anywhere: %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	for name, cfg := range map[string]sfp.Config{
		"no id":     {ClientSecret: "s"},
		"no secret": {ClientID: "i"},
		"bad url":   {ClientID: "i", ClientSecret: "s", BaseURL: "ftp://x"},
		"page 41":   {ClientID: "i", ClientSecret: "s", PageSize: 41},
	} {
		if _, err := sfp.New(cfg); !errors.Is(err, sfp.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg := sfp.ConfigFromEnv(func(k string) string {
		return map[string]string{sfp.EnvClientID: "cid", sfp.EnvClientSecret: "csecret", sfp.EnvWebhookSecret: "wsecret"}[k]
	})
	if cfg.BaseURL != sfp.SandboxBaseURL || cfg.ClientID != "cid" {
		t.Fatalf("%+v", cfg)
	}
	for _, s := range []string{cfg.String(), cfg.GoString()} {
		if strings.Contains(s, "csecret") || strings.Contains(s, "wsecret") || strings.Contains(s, "cid") {
			t.Fatalf("config prints a secret: %s", s)
		}
	}
}

// TestTokenCachedAndRefreshedBeforeExpiry: one token serves many calls; a
// new one is fetched shortly before the old one expires, never after.
func TestTokenCachedAndRefreshedBeforeExpiry(t *testing.T) {
	s, clk, c := manualSim(t, sfptest.Config{TokenTTL: 10 * time.Minute})
	for range 5 {
		if _, err := c.Find(ctx, "req-x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.TokenFetches(); n != 1 {
		t.Fatalf("%d token fetches for 5 calls, want 1", n)
	}
	clk.Advance(9*time.Minute + 30*time.Second) // within the 1 min margin
	if _, err := c.Find(ctx, "req-x"); err != nil {
		t.Fatal(err)
	}
	if n := c.TokenFetches(); n != 2 {
		t.Fatalf("%d token fetches, want a refresh before expiry", n)
	}
	if st := s.TokenStats(); st.Expired != 0 || st.Invalid != 0 {
		t.Fatalf("a call left with a dead token: %+v", st)
	}
}

// TestExpiredTokenRefreshedWithoutDuplicatePayout: the provider expired
// our token early; the create meets a 401 and fetches a new token, but is
// not sent again: its outcome is unknown until a lookup by our id proves it
// absent. Then it is sent once, and the payee is paid once.
func TestExpiredTokenRefreshedWithoutDuplicatePayout(t *testing.T) {
	s, _, c := manualSim(t, sfptest.Config{})
	cb := callbackSink(t)
	if _, err := c.Find(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	if _, err := c.Create(ctx, validRequest(cb)("req-exp", 5000)); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("create after expiry: %v, want outcome_unknown", err)
	}
	if found, err := c.Find(ctx, "req-exp"); err != nil || len(found) != 0 {
		t.Fatalf("lookup: %v %+v", err, found)
	}
	p, err := c.Create(ctx, validRequest(cb)("req-exp", 5000))
	if err != nil {
		t.Fatalf("create after the lookup: %v", err)
	}
	if n := s.Accepted("req-exp"); n != 1 {
		t.Fatalf("ledger: %d payouts, want 1", n)
	}
	if st := s.TokenStats(); st.Expired != 1 || st.Issued != 2 {
		t.Fatalf("token stats %+v: want one expired call, two tokens", st)
	}
	if p.Status != payout.StatusPending {
		t.Fatalf("%+v", p)
	}
	// The same for a read.
	s.ExpireTokens()
	if _, err := c.Get(ctx, p.ProviderID); err != nil {
		t.Fatalf("get after expiry: %v", err)
	}
}

// TestUnauthorizedAfterOneRefresh: credentials that stop working give
// Unauthorized after exactly one refresh, and the create is not repeated.
func TestUnauthorizedAfterOneRefresh(t *testing.T) {
	s, _, c := manualSim(t, sfptest.Config{})
	if _, err := c.Find(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	s.FailNextToken(http.StatusUnauthorized)
	_, err := c.Create(ctx, validRequest(callbackSink(t))("req-401", 5000))
	if rail.ClassOf(err) != rail.Unauthorized {
		t.Fatalf("%v: want unauthorized", err)
	}
	if n := s.Accepted("req-401"); n != 0 {
		t.Fatalf("%d payouts", n)
	}
	if n := c.TokenFetches(); n != 2 {
		t.Fatalf("%d token fetches, want the first and one refresh", n)
	}
	bad, _ := sfp.New(sfp.Config{BaseURL: s.URL(), ClientID: "x", ClientSecret: "y"})
	if _, err := bad.Find(ctx, "a"); rail.ClassOf(err) != rail.Unauthorized {
		t.Fatalf("wrong credentials: %v", err)
	}
}

// stub serves fixed answers and counts calls per path.
type stub struct {
	token   func(w http.ResponseWriter, r *http.Request)
	api     func(w http.ResponseWriter, r *http.Request)
	calls   atomic.Int64
	lastURL atomic.Value
}

func newStub(t *testing.T, st *stub, extra ...func(*sfp.Config)) *sfp.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == sfp.PathToken {
			if st.token != nil {
				st.token(w, r)
				return
			}
			io.WriteString(w, `{"requestId":"r","data":{"access_token":"tok","token_type":"Bearer","expires_in":3600}}`)
			return
		}
		st.calls.Add(1)
		st.lastURL.Store(r.URL.String())
		st.api(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := sfp.Config{BaseURL: srv.URL, ClientID: "i", ClientSecret: "s", CallbackURL: "https://example.com/webhooks/smartfastpay"}
	for _, f := range extra {
		f(&cfg)
	}
	c, err := sfp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func answer(status int, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// TestResponseShapes: every documented shape reads the same.
func TestResponseShapes(t *testing.T) {
	req := validRequest("")("req-1", 9_800_000-sfptest.MinAmountInCents)
	for name, body := range map[string]string{
		"bare strings":    `{"id":"77","status":"pending","total":"98000.00","subtotal":"98000.00","exchange":"1","fee":"0.00"}`,
		"bare numbers":    `{"id":77,"status":"pending","total":98000,"subtotal":98000.00,"exchange":1,"fee":0}`,
		"wrapped strings": `{"requestId":"x","data":{"id":"77","status":"pending","total":"98000.00"}}`,
		"wrapped numbers": `{"requestId":"x","data":{"id":77,"status":"pending","total":98000}}`,
	} {
		c := newStub(t, &stub{api: answer(200, body)})
		p, err := c.Create(ctx, req)
		if err != nil || p.ProviderID != "77" || p.ID != "req-1" || p.Status != payout.StatusPending || p.AmountInCents != 9_800_000 {
			t.Errorf("create %s: %+v %v", name, p, err)
		}
	}
	for name, body := range map[string]string{
		"wrapped string amount": `{"requestId":"x","data":{"id":"77","customer_id":"c","transaction_id":"req-1","amount":"98000.00","currency":"COP","status":"success","created_at":"2026-03-02T10:00:00Z","updated_at":"2026-03-02 10:05:00"}}`,
		"wrapped number amount": `{"requestId":"x","data":{"id":77,"transaction_id":"req-1","amount":98000,"status":"success","created_at":"2026-03-02 10:00:00"}}`,
		"bare":                  `{"id":"77","transaction_id":"req-1","amount":"98000","status":"SUCCESS","created_at":"2026-03-02T10:00:00Z"}`,
	} {
		c := newStub(t, &stub{api: answer(200, body)})
		p, err := c.Get(ctx, "77")
		if err != nil || p.ProviderID != "77" || p.ID != "req-1" || p.AmountInCents != 9_800_000 || p.Status != payout.StatusApproved ||
			!p.CreatedAt.Equal(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("get %s: %+v %v", name, p, err)
		}
	}
	for name, body := range map[string]string{
		"wrapped": `{"requestId":"x","data":[{"id":"1","transaction_id":"req-1","amount":"2.50","status":"onhold"},{"id":"2","transaction_id":"req-1x","amount":2,"status":"pending"}]}`,
		"bare":    `[{"id":"1","transaction_id":"req-1","amount":"2.50","status":"onhold"},{"id":"2","transaction_id":"req-1x","amount":2,"status":"pending"}]`,
	} {
		c := newStub(t, &stub{api: answer(200, body)})
		got, err := c.Find(ctx, "req-1")
		if err != nil || len(got) != 1 || got[0].ProviderID != "1" || got[0].AmountInCents != 250 || got[0].Status != payout.StatusPending {
			t.Errorf("find %s: %+v %v (want the exact match only)", name, got, err)
		}
	}
	for name, body := range map[string]string{
		"wrapped available": `{"requestId":"x","data":{"currency":"COP","available":"1500.25"}}`,
		"bare balance":      `{"currency":"COP","balance":1500.25}`,
	} {
		c := newStub(t, &stub{api: answer(200, body)})
		b, err := c.Balance(ctx)
		if err != nil || b.AmountInCents != 150025 || !b.HasAmountField {
			t.Errorf("balance %s: %+v %v", name, b, err)
		}
	}
}

// TestErrorClasses: each answer's class, and that the client sends a
// create once whatever happens.
func TestErrorClasses(t *testing.T) {
	req := validRequest("")("req-1", 5000)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		create bool
		get    bool
		want   rail.Class
	}{
		{"500 create", 500, ``, true, false, rail.OutcomeUnknown},
		{"502 create", 502, `<html>`, true, false, rail.OutcomeUnknown},
		{"429 create", 429, ``, true, false, rail.OutcomeUnknown},
		{"400 create", 400, `{"requestId":"r","moreInformation":"document 12345678909 is invalid"}`, true, false, rail.Rejected},
		{"422 create", 422, `{"requestId":"r","status":422,"payload":"bad"}`, true, false, rail.Rejected},
		// Our id refused as already used: SmartFastPay holds a payout
		// under it, never a refusal of the payee.
		{"400 create, id taken", 400, `{"requestId":"r","moreInformation":"transaction.id has already been taken"}`, true, false, rail.AlreadyExists},
		{"422 create, duplicate transaction", 422, `{"message":"Duplicate transaction"}`, true, false, rail.AlreadyExists},
		// The same past the 200 bytes of a message that are kept.
		{"400 create, id taken late in a long message", 400, `{"moreInformation":"` + strings.Repeat("The request could not be processed. ", 6) + `transaction.id has already been taken"}`, true, false, rail.AlreadyExists},
		{"408 create", 408, ``, true, false, rail.OutcomeUnknown},
		{"425 create", 425, ``, true, false, rail.OutcomeUnknown},
		{"403 create", 403, ``, true, false, rail.Unauthorized},
		{"404 create", 404, ``, true, false, rail.Unauthorized},
		{"409 create", 409, ``, true, false, rail.AlreadyExists},
		{"413 create", 413, ``, true, false, rail.Permanent},
		{"200 create, no id", 200, `{"status":"pending"}`, true, false, rail.OutcomeUnknown},
		{"200 create, garbage", 200, `<html>ok</html>`, true, false, rail.OutcomeUnknown},
		{"503 get", 503, ``, false, true, rail.Retryable},
		{"429 get", 429, ``, false, true, rail.Retryable},
		{"404 get", 404, `{"moreInformation":"payout not found"}`, false, true, rail.Permanent},
		{"403 get", 403, ``, false, true, rail.Unauthorized},
		{"400 get", 400, ``, false, true, rail.Permanent},
		{"404 find", 404, ``, false, false, rail.Unauthorized},
		{"500 find", 500, ``, false, false, rail.Retryable},
		{"200 find, garbage", 200, `{"data":{"id":1}}`, false, false, rail.Retryable},
	} {
		st := &stub{api: answer(tc.status, tc.body)}
		c := newStub(t, st)
		var err error
		switch {
		case tc.create:
			_, err = c.Create(ctx, req)
		case tc.get:
			_, err = c.Get(ctx, "77")
		default:
			_, err = c.Find(ctx, "req-1")
		}
		re := railErr(t, err)
		if re.Class != tc.want || re.Rail != rail.SmartFastPay {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
		if tc.status != 200 && re.HTTPStatus != tc.status {
			t.Errorf("%s: HTTPStatus %d", tc.name, re.HTTPStatus)
		}
		want := int64(1) // no repeat: but a listing page that failed retryably is asked for again
		if !tc.create && !tc.get && tc.want == rail.Retryable {
			want += rail.ListPageRetries
		}
		if n := st.calls.Load(); n != want {
			t.Errorf("%s: %d calls, want %d", tc.name, n, want)
		}
		if strings.Contains(err.Error(), "12345678909") {
			t.Errorf("%s: the error echoes a document: %v", tc.name, err)
		}
	}
}

// TestCreate401RetriedOnce: a 401 on a create is followed by one new token
// and no second POST: outcome unknown, looked up before any other.
func TestCreate401RetriedOnce(t *testing.T) {
	var tokens atomic.Int64
	st := &stub{
		token: func(w http.ResponseWriter, r *http.Request) {
			n := tokens.Add(1)
			io.WriteString(w, `{"data":{"access_token":"tok`+string(rune('0'+n))+`","expires_in":3600}}`)
		},
		api: answer(401, `{"moreInformation":"invalid token"}`),
	}
	c := newStub(t, st)
	_, err := c.Create(ctx, validRequest("")("req-1", 5000))
	if rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("%v", err)
	}
	if st.calls.Load() != 1 || tokens.Load() != 2 {
		t.Fatalf("%d POSTs and %d tokens: want 1 and 2", st.calls.Load(), tokens.Load())
	}
}

// TestTransportFailures: a create that cannot connect is Retryable
// (nothing left); one that timed out or lost its answer is OutcomeUnknown;
// a read that timed out is Retryable.
func TestTransportFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := sfp.New(sfp.Config{BaseURL: "http://" + addr, ClientID: "i", ClientSecret: "s"})
	if _, err := c.Get(ctx, "1"); rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("refused connection: %v", err)
	}

	s := sfptest.NewTestServer(t, sfptest.Config{Seed: 3})
	cb := callbackSink(t)
	slow := s.Client(func(c *sfp.Config) { c.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond} })
	if _, err := slow.Find(ctx, "warm"); err != nil { // a token first
		t.Fatal(err)
	}
	s.UpdateFaults(func(f *sfptest.Faults) { f.Latency = time.Second })
	_, err = slow.Create(ctx, validRequest(cb)("req-timeout", 5000))
	if rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("timed-out create: %v (class %s)", err, rail.ClassOf(err))
	}
	if _, err := slow.Find(ctx, "req-timeout"); rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("timed-out read: %v", err)
	}
	s.SetFaults(sfptest.Faults{})
	// The provider went on with the create the client gave up on.
	deadline := time.Now().Add(30 * time.Second)
	for s.Accepted("req-timeout") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.Accepted("req-timeout"); n != 1 {
		t.Fatalf("a create the client timed out on made %d payouts, want 1 (the honest worst case)", n)
	}

	// Not the short client: a create that timed out before it reached
	// the simulator would leave the drop armed and nothing to find.
	patient := s.Client(nil)
	s.DropNextCreateResponse()
	if _, err := patient.Create(ctx, validRequest(cb)("req-drop", 5000)); rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("dropped answer: %v", err)
	}
	if found, err := patient.Find(ctx, "req-drop"); err != nil || len(found) != 1 {
		t.Fatalf("find after a dropped answer: %v %v", found, err)
	}
}

// TestListWalksPagesUntilShort: the listing reads every page, stops at a
// short one, and refuses a server that ignores page.
func TestListWalksPagesUntilShort(t *testing.T) {
	s, clk, _ := manualSim(t, sfptest.Config{})
	c := s.Client(func(c *sfp.Config) { c.PageSize = 3 })
	cb := callbackSink(t)
	start := clk.Now()
	for i := range 7 {
		clk.Advance(time.Second)
		if _, err := c.Create(ctx, validRequest(cb)("req-p"+string(rune('a'+i)), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for p, err := range c.List(ctx, rail.ListFilter{From: start.Add(2 * time.Second), To: start.Add(6 * time.Second)}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "req-pb,req-pc,req-pd,req-pe,req-pf" {
		t.Fatalf("listing by time: %v", ids)
	}
	n := 0
	for _, err := range c.List(ctx, rail.ListFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 7 {
		t.Fatalf("%d payouts listed, want 7 over pages of 3", n)
	}
	full := `{"data":[{"id":"1","transaction_id":"a","amount":"2.00","status":"pending"},{"id":"2","transaction_id":"b","amount":"2.00","status":"pending"},{"id":"3","transaction_id":"c","amount":"2.00","status":"pending"}]}`
	st := &stub{api: answer(200, full)}
	c2 := newStub(t, st, func(c *sfp.Config) { c.PageSize = 3 })
	var lastErr error
	read := 0
	for _, err := range c2.List(ctx, rail.ListFilter{}) {
		lastErr = err
		if read++; read > 20 {
			break // without the repeat check the walk never ends
		}
	}
	if rail.ClassOf(lastErr) != rail.Permanent || st.calls.Load() != 2 {
		t.Fatalf("a server that ignores page: %v after %d calls", lastErr, st.calls.Load())
	}
}

// TestFindSendsOurID: Find filters by transaction_id and sorts by id
// ascending.
func TestFindSendsOurID(t *testing.T) {
	st := &stub{api: answer(200, `{"data":[]}`)}
	c := newStub(t, st)
	if got, err := c.Find(ctx, "req-42"); err != nil || len(got) != 0 {
		t.Fatal(got, err)
	}
	u := st.lastURL.Load().(string)
	for _, part := range []string{"transaction_id=req-42", "sort=id%2Casc", "limit=40", "page=1"} {
		if !strings.Contains(u, part) {
			t.Errorf("%s lacks %s", u, part)
		}
	}
}

// TestUnknownStatusNeverFinal: an unknown status maps to "" and is counted.
func TestUnknownStatusNeverFinal(t *testing.T) {
	c := newStub(t, &stub{api: answer(200, `{"data":{"id":"1","transaction_id":"a","amount":"2.00","status":"processing"}}`)})
	p, err := c.Get(ctx, "1")
	if err != nil || p.Status != "" || p.ProviderStatus != "processing" || c.UnknownStatuses() != 1 {
		t.Fatalf("%+v %v %d", p, err, c.UnknownStatuses())
	}
}

// dialFails lets the token request through and fails every other call
// while connecting.
type dialFails struct{ next http.RoundTripper }

func (d dialFails) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == sfp.PathToken {
		return d.next.RoundTrip(r)
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
}

// TestCreateThatNeverConnectedIsRetryable: only a failure to connect
// proves a create left nothing behind.
func TestCreateThatNeverConnectedIsRetryable(t *testing.T) {
	st := &stub{api: answer(200, `{}`)}
	c := newStub(t, st, func(c *sfp.Config) { c.HTTPClient = &http.Client{Transport: dialFails{http.DefaultTransport}} })
	_, err := c.Create(ctx, validRequest("")("req-dial", 5000))
	if rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("%v: want retryable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := newStub(t, &stub{api: answer(200, `{}`)}).Create(cctx, validRequest("")("req-c", 5000)); rail.ClassOf(err) == rail.OutcomeUnknown {
		t.Fatalf("a cancelled context before any token: %v, nothing was sent", err)
	}
}

// TestListTimeRangeKeepsSubSecondEdges: the range is sent in whole seconds
// (RFC 3339), widened outwards, so a payout made within the last second
// before To is not lost.
func TestListTimeRangeKeepsSubSecondEdges(t *testing.T) {
	s, clk, c := manualSim(t, sfptest.Config{})
	clk.Advance(500 * time.Millisecond)
	created := clk.Now()
	if _, err := c.Create(ctx, validRequest(callbackSink(t))("req-edge", 5000)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, err := range c.List(ctx, rail.ListFilter{From: created.Add(-100 * time.Millisecond), To: created.Add(100 * time.Millisecond)}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.ID)
	}
	if len(got) != 1 || s.Accepted("req-edge") != 1 {
		t.Fatalf("listing %v around a payout made at %s", got, created.Format(time.RFC3339Nano))
	}
}

// TestFindRefusesToProveAbsenceFromAnItemItCannotCompare: a listed payout
// without transaction_id, or naming our id in another case or with spaces,
// may be ours: Find and FindMany fail (Permanent) rather than call the
// payee absent, which would pay it twice. An id that merely starts like
// ours is another payee's, and is skipped.
func TestFindRefusesToProveAbsenceFromAnItemItCannotCompare(t *testing.T) {
	item := func(txID string) string {
		return `{"data":[{"id":"7","transaction_id":` + txID + `,"amount":"2.00","status":"paid"}]}`
	}
	for name, tc := range map[string]struct {
		txID string
		fail bool
	}{
		"no transaction_id": {`""`, true},
		"null":              {`null`, true},
		"upper case":        {`"REQ-42"`, true},
		"spaces":            {`" req-42 "`, true},
		"another payee":     {`"req-42x"`, false},
	} {
		t.Run(name, func(t *testing.T) {
			c := newStub(t, &stub{api: answer(200, item(tc.txID))})
			got, err := c.Find(ctx, "req-42")
			if tc.fail != (err != nil) || (err != nil && rail.ClassOf(err) != rail.Permanent) || len(got) != 0 {
				t.Fatalf("Find: %+v %v (want failure: %v)", got, err, tc.fail)
			}
			many, err := c.FindMany(ctx, []string{"req-41", "req-42"})
			if tc.fail != (err != nil) || (err != nil && rail.ClassOf(err) != rail.Permanent) || len(many) != 0 {
				t.Fatalf("FindMany: %+v %v (want failure: %v)", many, err, tc.fail)
			}
		})
	}
}

// A 200 whose body holds no array (null, bare or as data; an object) is an
// unreadable answer, never an empty listing: taken for "none", a lookup
// after a lost answer would prove a paid payee absent. An empty array is
// an empty listing.
func TestFindRefusesAnAnswerWithoutAnArray(t *testing.T) {
	for body, fail := range map[string]bool{
		`null`:                          true,
		`{"requestId":"r","data":null}`: true,
		`{"requestId":"r"}`:             true,
		`{}`:                            true,
		`[]`:                            false,
		`{"requestId":"r","data":[]}`:   false,
	} {
		c := newStub(t, &stub{api: answer(200, body)})
		got, err := c.Find(ctx, "req-42")
		if fail != (err != nil) || len(got) != 0 {
			t.Errorf("Find on %s: %+v %v (want failure: %v)", body, got, err, fail)
		}
	}
}
