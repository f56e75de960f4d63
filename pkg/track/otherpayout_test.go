package track

import (
	"context"
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// Two payouts under one requestId at SmartFastPay: X failed, Y is live,
// and the dispatcher adopted Y (dispatch.adoptable: the one that has not
// failed) and handed it off. X's FAILED callback, delivered (or retried)
// after Y's PENDING, has no hand-off: it was read from SmartFastPay
// (FAILED, our id) and emitted for the request, which then read FAILED
// while Y paid; Y's APPROVED followed as a "new life". The marketplace
// reads FAILED and asks again: the payee is paid twice, and the lifecycle
// has two finals. (Not covered: X's FAILED before Y has any status.)
func TestNonAdoptedFailedPayoutDoesNotFailTheRequest(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	_, srv := f.singleEngine(s, nil)
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // callbacks posted by hand below
	r := f.sfpPayout(srv.URL, "98")                     // onhold until SetStatus
	// X's FAILED callback, delivered late; Y handed off.
	xh, xbody := f.otherPayoutsCallback(s, r, smartfastpay.StatusFailed)
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's
	code := postTo(t, srv.URL, SmartFastPayWebhookPath, xh, xbody)
	t.Logf("X's FAILED callback answered %d", code)
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil { // Y pays
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's APPROVED
	evs := f.statusEvents()
	got := statusesOf(evs, r.ID)
	t.Logf("request %s: %v", r.ID, got)
	for _, st := range got {
		if st == payout.StatusFailed {
			t.Errorf("the request was emitted FAILED from the payout not adopted, while the adopted one pays: %v", got)
		}
	}
	checkLog(t, evs)
}

// otherPayoutsCallback makes two payouts of r at SmartFastPay: X, moved
// through statuses, whose signed callback it returns for the caller to
// deliver late, then Y, handed off: the payout the dispatcher adopts
// (dispatch.adoptable), X not.
func (f *fixture) otherPayoutsCallback(s *singles, r rail.PayoutRequest, statuses ...string) (http.Header, []byte) {
	f.t.Helper()
	if _, err := s.sfpc.Create(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
	for _, st := range statuses {
		if err := s.sfp.SetStatus(r.ID, st); err != nil {
			f.t.Fatal(err)
		}
	}
	s.wait(f.t)
	h, body, err := s.sfp.SignedWebhook(r.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	f.handOff(s.sfpc, r)
	return h, body
}

// deliverSFPCallback posts SmartFastPay's signed callback of requestID's
// latest payout, as it stands, to the engine's server at url, and fails
// the test unless it is answered 200.
func (f *fixture) deliverSFPCallback(s *singles, url, requestID string) {
	f.t.Helper()
	h, body, err := s.sfp.SignedWebhook(requestID)
	if err != nil {
		f.t.Fatal(err)
	}
	if code := postTo(f.t, url, SmartFastPayWebhookPath, h, body); code != http.StatusOK {
		f.t.Fatalf("the callback of %s: %d", requestID, code)
	}
}
