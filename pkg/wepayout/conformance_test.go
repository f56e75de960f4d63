package wepayout_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// statusTable is what each provider status must map to [ours].
var statusTable = map[string]payout.Status{
	"1": payout.StatusPending, "2": payout.StatusPending, "7": payout.StatusPending,
	"3": payout.StatusApproved, "4": payout.StatusFailed, "5": payout.StatusFailed, "6": payout.StatusCancelled,
	"9": "", // unknown: never final
}

// TestConformance runs the seam's suite. Verify is what the tracker must
// do for this rail: check the signature against our record, then confirm
// the body by a read, because the signature covers the invoice, currency
// and amount only (see TestVerifyWebhookAloneDoesNotCoverTheBody).
func TestConformance(t *testing.T) {
	var cur *wepayout.Client
	railtest.RunSinglePayouts(t, railtest.Harness{
		Rail: rail.WEpayout,
		New: func(t *testing.T) (rail.SinglePayouts, railtest.Sim) {
			sim, c, _ := newSim(t, weptest.Config{}, wepayout.Config{PageSize: 5})
			cur = c
			return c, sim
		},
		Request: pixRequest,
		Invalid: func(id string) rail.PayoutRequest {
			r := pixRequest(id, 100)
			r.Payee.LegalID = "52998224724" // a wrong check digit
			return r
		},
		Verify: func(h http.Header, body []byte, rec rail.PayoutRequest) (rail.Payout, error) {
			w, err := wepayout.VerifyWebhook(h, body, rec, weptest.DefaultAPIKey)
			if err != nil {
				return rail.Payout{}, err
			}
			return cur.ConfirmWebhook(context.Background(), w)
		},
		Statuses: statusTable,
		PageSize: 5,
	})
}

// The simulator is what the suite needs of one.
var _ railtest.Sim = (*weptest.Server)(nil)
