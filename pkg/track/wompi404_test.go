package track

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// wompiPayoutNotFoundOnce answers the first GET /payouts/{id} with 404, as
// a replica behind the create (read-after-write lag) or a gateway
// mid-deploy would; everything else reaches the simulator.
type wompiPayoutNotFoundOnce struct{ served atomic.Int32 }

func (n *wompiPayoutNotFoundOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.URL.Path
	if req.Method == http.MethodGet && strings.Contains(p, "/payouts/") && !strings.Contains(p, "/transactions") &&
		n.served.Add(1) == 1 {
		return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"status":"NOT_FOUND","code":"NOT_FOUND","message":"payout not found"}`)), Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// The Wompi counterpart of TestWEpayoutHandedOffPaymentNotDroppedOnOne404
// (from a review). Two faults together: a Wompi batch's webhooks are lost, and the first
// poll of the payout the dispatcher handed off (Wompi answered its POST
// with this id) gets a 404. pollPayout took that 404 as "unknown to
// Wompi", marked the payout final in the hand-off and dropped it from the
// schedule (the sweep skipped it then): its transactions settled later and
// their requests never left SUBMITTED. The single-payout path already
// keeps such a payout at the longest backoff.
func TestWompiHandedOffPayoutNotDroppedOnOne404(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tr := &wompiPayoutNotFoundOnce{}
	wc, err := wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.engine(func(c *Config) {
		c.Wompi = f.rail(wc, f.sim.Config().EventsSecret)
		c.SweepInterval = time.Minute
	})
	// No webhook URL: every webhook is lost.
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"))
	ctx := context.Background()
	_, _ = e.PollOnce(ctx) // the 404
	if tr.served.Load() == 0 {
		t.Fatal("the poll never read the payout")
	}
	f.sim.Advance(5 * time.Second) // everything settles
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	for _, tx := range c.txs {
		wt, err := f.wompi.PayoutTransaction(ctx, c.payoutID, tx.ID)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := wompi.TransactionStatus(wt.Status).PayoutStatus()
		if got := statusesOf(evs, tx.Reference); len(got) == 0 || got[len(got)-1] != st {
			t.Errorf("%s: statuses %v after Wompi settled it %s: the final status is lost", tx.Reference, got, st)
		}
	}
}
