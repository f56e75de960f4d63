package dispatch

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// refusedAfterForward is a gateway in front of the provider that forwards
// the first create and answers it at once with status and body (a 401 or
// 403 of its own), while the provider applies the create delay later: the
// payout shows in the provider's listing only then. With refuseToken, the
// one token request that follows the refused create (SmartFastPay's
// refresh after a 401) is refused too (401), so the create ends
// Unauthorized rather than outcome unknown.
type refusedAfterForward struct {
	status      int
	body        string
	delay       time.Duration
	refuseToken bool

	mu      sync.Mutex
	refused bool // the first create was answered status
	tokenNo bool // the token request after it was refused
	sent    sync.WaitGroup
}

func (g *refusedAfterForward) RoundTrip(req *http.Request) (*http.Response, error) {
	token := strings.Contains(req.URL.Path, "token")
	create := req.Method == http.MethodPost && !token
	g.mu.Lock()
	refuse := create && !g.refused
	g.refused = g.refused || refuse
	noToken := token && g.refused && g.refuseToken && !g.tokenNo
	g.tokenNo = g.tokenNo || noToken
	g.mu.Unlock()
	answer := func(status int, body string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
			Body: io.NopCloser(strings.NewReader(body))}
	}
	switch {
	case refuse:
		if err := forwardLater(http.DefaultTransport, req, g.delay, &g.sent); err != nil {
			return nil, err
		}
		return answer(g.status, g.body), nil
	case noToken:
		return answer(http.StatusUnauthorized, `{"requestId":"r","moreInformation":"invalid client credentials"}`), nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults together on a rail that deduplicates nothing: a gateway
// forwards a create and answers it 401 or 403 itself (the client classes
// the create Unauthorized), and the provider applies it a moment later,
// well within RecoveryGrace. The create's outcome is unknown whatever the
// answer's status says: the payee's lookup must wait, as after any POST
// that may land, until no POST can land any more. A lookup after only the
// longest backoff (RetryMax) finds nothing, and the POST repeated on its
// word pays the payee twice.
func TestSingleCreateRefusedUnauthorizedAfterForwardIsNotRepeated(t *testing.T) {
	t.Parallel()
	const wep401 = `{"error":{"code":"unauthorized","message":"invalid api key"}}`
	for _, tc := range []struct {
		name        string
		rail        int // index in singleRails
		status      int
		body        string
		refuseToken bool
	}{
		{"WEpayout401", 1, http.StatusUnauthorized, wep401, false},
		{"WEpayout403", 1, http.StatusForbidden, wep401, false},
		{"SmartFastPay403", 0, http.StatusForbidden, `{"requestId":"r","moreInformation":"forbidden"}`, false},
		{"SmartFastPay401", 0, http.StatusUnauthorized, `{"requestId":"r","moreInformation":"access token expired"}`, false},
		{"SmartFastPay401RefreshRefused", 0, http.StatusUnauthorized, `{"requestId":"r","moreInformation":"access token expired"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := &refusedAfterForward{status: tc.status, body: tc.body, delay: time.Second, refuseToken: tc.refuseToken}
			hc := &http.Client{Transport: g}
			r := singleRails(t)[tc.rail](t)
			switch s := r.sim.(type) {
			case *sfptest.Server:
				cb := sink(t)
				r.client = s.Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = hc })
			case *weptest.Server:
				r.client = s.Client(wepayout.Config{NotificationURL: sink(t), HTTPClient: hc})
			}
			f := newFixture(t, fixtureOpt{})
			b := singleBatch(r, "gw-"+strings.ToLower(tc.name), 1)
			e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			g.sent.Wait()
			g.mu.Lock()
			refused, noToken := g.refused, g.tokenNo
			g.mu.Unlock()
			if !refused || noToken != tc.refuseToken {
				t.Fatalf("the faults never happened (create refused %v, token refused %v)", refused, noToken)
			}
			// The refusal of our credentials is counted as blocked,
			// whether the create ended Unauthorized or outcome unknown
			// (SmartFastPay's 401 once a new token came).
			if n := testutil.ToFloat64(e.m.railBlocked.WithLabelValues(string(r.name), strconv.Itoa(tc.status))); n < 1 {
				t.Fatalf("the refusal of our credentials was not counted as blocked (%v)", n)
			}
			f.checkSinglePaid(r, b, nil)
		})
	}
}
