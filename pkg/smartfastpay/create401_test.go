package smartfastpay_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// TestCreate401AfterApplyNotRepeated: a gateway in front of SmartFastPay
// forwards the first POST /v1/payout, which the provider applies, and then
// answers 401 (the token expired while the call was being applied). A 401
// proves nothing about the create then: the client must not send it again
// before a lookup by our id, and the payee must be paid once.
func TestCreate401AfterApplyNotRepeated(t *testing.T) {
	s, _, _ := manualSim(t, sfptest.Config{})
	var posts atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == sfp.PathPayout && posts.Add(1) == 1 {
			s.Handler().ServeHTTP(httptest.NewRecorder(), r) // applied
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"requestId":"r","moreInformation":"access token expired"}`)
			return
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	c := s.Client(func(cfg *sfp.Config) { cfg.BaseURL = gw.URL })

	_, err := c.Create(ctx, validRequest(callbackSink(t))("req-401-late", 5000))
	if n := s.Accepted("req-401-late"); n != 1 {
		t.Fatalf("ledger: %d payouts for one request (err %v): a create answered 401 was sent again without a lookup", n, err)
	}
	if cl := rail.ClassOf(err); cl != rail.OutcomeUnknown {
		t.Fatalf("%v (class %s): want outcome_unknown, so that the payee is looked up before any other POST", err, cl)
	}
	found, err := c.Find(ctx, "req-401-late")
	if err != nil || len(found) != 1 {
		t.Fatalf("lookup after the 401: %v %+v, want the one payout", err, found)
	}
}

// TestCreate401TokenRefreshFailsIsUnknown: a create answered 401 whose new
// token fails retryably (the token endpoint's 503) stays an unknown
// outcome, never "not applied": the dispatcher would look the payee up at
// once, before a create still being applied is listed.
func TestCreate401TokenRefreshFailsIsUnknown(t *testing.T) {
	var tokens atomic.Int64
	st := &stub{
		token: func(w http.ResponseWriter, r *http.Request) {
			if tokens.Add(1) > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, `{"data":{"access_token":"tok1","expires_in":3600}}`)
		},
		api: answer(http.StatusUnauthorized, `{"moreInformation":"access token expired"}`),
	}
	c := newStub(t, st)
	_, err := c.Create(ctx, validRequest("")("req-1", 5000))
	if cl := rail.ClassOf(err); cl != rail.OutcomeUnknown {
		t.Fatalf("%v (class %s), want outcome_unknown", err, cl)
	}
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
}
