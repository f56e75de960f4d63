package track

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// Two payouts under one requestId at SmartFastPay (the provider does not
// deduplicate): X, not adopted, was paid and then refunded (the duplicate
// given back); Y, adopted and handed off, is live (pending, or paid). X's
// refunded callback has no hand-off: it is read from SmartFastPay
// (RETURNED, our id) and, unlike a FAILED (failureOfOther), emitted for the
// request: the request reads RETURNED while Y pays (or paid) it. The
// marketplace reads RETURNED and pays the payee again.
func TestNonAdoptedReturnedPayoutDoesNotReturnTheRequest(t *testing.T) {
	for _, yPaid := range []bool{true, false} {
		name := "YPending"
		if yPaid {
			name = "YApproved"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			s := newSingles(t)
			_, srv := f.singleEngine(s, nil)
			s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // callbacks posted by hand below
			r := f.sfpPayout(srv.URL, "98")
			// X's refunded callback, delivered late; Y handed off.
			xh, xbody := f.otherPayoutsCallback(s, r, smartfastpay.StatusSuccess, smartfastpay.StatusRefunded)
			if yPaid {
				if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil {
					t.Fatal(err)
				}
				s.wait(t)
			}
			f.deliverSFPCallback(s, srv.URL, r.ID) // Y's
			code := postTo(t, srv.URL, SmartFastPayWebhookPath, xh, xbody)
			t.Logf("X's refunded callback answered %d", code)
			evs := f.statusEvents()
			got := statusesOf(evs, r.ID)
			t.Logf("request %s: %v", r.ID, got)
			for _, ev := range evs {
				if ev.RequestID == r.ID && (ev.Status == payout.StatusReturned ||
					(!yPaid && ev.Status == payout.StatusApproved)) {
					t.Errorf("the request was emitted %s from the payout not adopted (%s), while the adopted one pays: %v",
						ev.Status, deref(ev.TransactionID), got)
				}
			}
			checkLog(t, evs)
		})
	}
}
