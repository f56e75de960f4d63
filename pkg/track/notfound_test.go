package track

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// notFoundOnce answers the first GET of one WEpayout payment by id with
// 404, as a replica behind the create (read-after-write lag) or a gateway
// mid-deploy would; everything else reaches the simulator.
type notFoundOnce struct{ served atomic.Int32 }

func (n *notFoundOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v2/payout/payments/") && n.served.Add(1) == 1 {
		return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"message":"Payment not found."}`)), Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults together on WEpayout: the payment's webhooks are lost, and
// the first poll of a payment the dispatcher handed off (WEpayout answered
// its create with this id) gets a 404. The poll took that 404 as "unknown
// to its provider" and dropped the payment from the schedule: it was paid
// later and its request never left SUBMITTED, silently (one log line).
func TestWEpayoutHandedOffPaymentNotDroppedOnOne404(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	tr := &notFoundOnce{}
	s.wepc = s.wep.Client(wepayout.Config{HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tr}})
	e, srv := f.singleEngine(s, nil)
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	wr := f.wepPayout(srv.URL, "00") // paid
	f.handOff(s.wepc, wr)
	ctx := context.Background()
	_, _ = e.PollOnce(ctx) // the 404
	if tr.served.Load() == 0 {
		t.Fatal("the poll never read the payment")
	}
	for range 3 {
		s.wep.Advance(time.Second)
	}
	s.wait(t)
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := statusesOf(f.statusEvents(), wr.ID); len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
		t.Fatalf("%s: statuses %v after the payment was paid, want APPROVED last", wr.ID, got)
	}
}
