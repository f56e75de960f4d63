package dispatch

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// sfpLookupLag serves SmartFastPay's lookup by our id (GET /v1/payouts
// with transaction_id: Find and FindMany) from a copy behind the creates
// once a create's answer was lost: while hidden says so (given when the
// lost answer ended and how many lookups were made since, this one
// included), the lookup is answered empty, as by a replica that has not
// seen the payout yet. Every other call reaches SmartFastPay.
type sfpLookupLag struct {
	hidden func(lostAt time.Time, lookups int) bool

	mu      sync.Mutex
	lostAt  time.Time // when the first create whose answer was lost ended
	lookups int       // lookups since
	served  int       // of them, answered empty
}

func (l *sfpLookupLag) RoundTrip(req *http.Request) (*http.Response, error) {
	create := req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, sfp.PathPayout)
	lookup := req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, sfp.PathPayouts) &&
		req.URL.Query().Get("transaction_id") != ""
	if lookup {
		l.mu.Lock()
		hide := false
		if !l.lostAt.IsZero() {
			l.lookups++
			if hide = l.hidden(l.lostAt, l.lookups); hide {
				l.served++
			}
		}
		l.mu.Unlock()
		if hide {
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
				Body: io.NopCloser(strings.NewReader(`{"requestId":"behind","data":[]}`))}, nil
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if create && err != nil {
		l.mu.Lock()
		if l.lostAt.IsZero() {
			l.lostAt = time.Now() // the payout was committed before this
		}
		l.mu.Unlock()
	}
	return resp, err
}

func (l *sfpLookupLag) servedBehind() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served
}

// sfpPaidWhileTheLookupLags pays one SmartFastPay payee whose first
// create is committed and its answer lost, while the lookup by our id is
// served by a copy behind the creates as hidden says; it returns the
// fixture, the rail, the batch and the lagging lookup once the batch is
// submitted.
func sfpPaidWhileTheLookupLags(t *testing.T, hidden func(grace time.Duration) func(time.Time, int) bool) (*fixture, singleRail, payout.Batch, *sfpLookupLag) {
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{})
	lag := &sfpLookupLag{}
	cb := sink(t)
	r.client = r.sim.(*sfptest.Server).Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = &http.Client{Transport: lag} })
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	lag.hidden = hidden(e.cfg.RecoveryGrace)
	b := singleBatch(r, "sfplag", 1)
	r.sim.DropNextCreateResponse() // committed, answer lost: outcome unknown
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	lag.mu.Lock()
	defer lag.mu.Unlock()
	if lag.lostAt.IsZero() || lag.lookups == 0 {
		t.Fatal("no create answer was lost, or no lookup followed it: the fault never happened")
	}
	return f, r, b, lag
}

// Two faults together on SmartFastPay, which deduplicates nothing: a
// create is committed and its answer lost, and the lookup by our id is
// served by a copy behind the creates for a while after it. The lookup
// the unknown outcome calls for waits RecoveryGrace, which covers a copy
// behind by less than that: the payout is found and adopted, never posted
// again. (Without that wait the lookup, answered empty, proves the payee
// absent and the POST after it pays twice.)
func TestSmartFastPayLostAnswerLookupBehindLessThanTheGracePaysOnce(t *testing.T) {
	t.Parallel()
	f, r, b, _ := sfpPaidWhileTheLookupLags(t, func(grace time.Duration) func(time.Time, int) bool {
		return func(lostAt time.Time, _ int) bool { return time.Since(lostAt) < grace/2 }
	})
	f.checkSinglePaid(r, b, nil)
}
