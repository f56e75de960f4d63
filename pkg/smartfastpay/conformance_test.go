package smartfastpay_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// callbackSink answers every callback 204, at a URL long enough for the
// documented 30-character minimum.
func callbackSink(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/webhooks/smartfastpay"
}

func validRequest(callback string) func(id string, cents int64) rail.PayoutRequest {
	return func(id string, cents int64) rail.PayoutRequest {
		return rail.PayoutRequest{ID: id, AmountInCents: cents + sfptest.MinAmountInCents, Currency: "COP", CallbackURL: callback,
			Payee: rail.Payee{Name: "Ana Gómez", Email: "ana@example.com", Phone: "573001234567", LegalIDType: "CC", LegalID: "12345678909"}}
	}
}

func TestConformance(t *testing.T) {
	var cb string
	const secret = sfptest.DefaultWebhookSecret
	railtest.RunSinglePayouts(t, railtest.Harness{
		Rail: rail.SmartFastPay,
		New: func(t *testing.T) (rail.SinglePayouts, railtest.Sim) {
			cb = callbackSink(t)
			s := sfptest.NewTestServer(t, sfptest.Config{Seed: 1})
			return s.Client(func(c *sfp.Config) { c.PageSize = 10 }), s
		},
		Request: func(id string, cents int64) rail.PayoutRequest {
			r := validRequest(cb)(id, 0)
			r.AmountInCents = cents
			// The pagination subtest asks for 100+i cents, under
			// SmartFastPay's documented minimum of 2.00 COP: such an amount
			// is lifted above it (reported to the suite's owner). Every
			// other subtest asks for at least 2.00 and gets what it asks.
			if cents < sfptest.MinAmountInCents {
				r.AmountInCents = cents + 100_00
			}
			r.Payee.Phone = "573001234599" // ends in 99: stays pending
			return r
		},
		Invalid: func(id string) rail.PayoutRequest {
			r := validRequest(cb)(id, 100_00)
			r.Payee.LegalID = "123" // document must be 11 digits
			return r
		},
		Verify: func(h http.Header, body []byte, rec rail.PayoutRequest) (rail.Payout, error) {
			cbk, err := sfp.Webhooks{Secret: secret}.Parse(h, body)
			if err != nil {
				return rail.Payout{}, err
			}
			for _, d := range cbk.Data {
				if string(d.TransactionID) == rec.ID {
					return d.Payout(), nil
				}
			}
			return rail.Payout{}, sfp.ErrMalformedWebhook
		},
		Statuses: map[string]payout.Status{
			"pending": payout.StatusPending, "onhold": payout.StatusPending, "success": payout.StatusApproved,
			"failed": payout.StatusFailed, "returned": payout.StatusReturned, "refunded": payout.StatusReturned,
			"processing": "",
		},
		PageSize: 10,
	})
}
