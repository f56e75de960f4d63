package track

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair (from a review): X's "pending" callback is answered 503 (a
// Redis blip), and SmartFastPay retries it later (a non-2xx is retried
// for days; a captured one can be replayed too: no age limit). Meanwhile
// X failed (the request's first life ends FAILED, no PENDING emitted), the
// requestId sent again made Y, and Y's FAILED ended the second life. Then
// X's pending callback comes again: its status was taken from the body as
// is, and a new transaction after a FAILED starts a new life, so the
// request went back to PENDING under an eventId never emitted. X and Y
// are final and off the schedule: the request stayed PENDING for ever
// (X's FAILED, polled again, has the first life's eventId: consumers drop
// it).
func TestReplayedPendingOfEarlierLifeDoesNotReopenRequest(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // callbacks posted by hand below
	r := f.sfpPayout(srv.URL, "98")
	x := f.handOff(s.sfpc, r)
	// X's pending callback, answered 503 at first (a Redis blip): not
	// emitted, SmartFastPay sends it again later.
	xh, xbody, err := s.sfp.SignedWebhook(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // X's FAILED: the first life ends
	f.pollRounds(e, 2, time.Minute)        // X final: off the schedule
	s.sfp.Advance(time.Minute)
	y := f.handOff(s.sfpc, r)
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's PENDING: the second life
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's FAILED: the second life ends
	f.pollRounds(e, 2, time.Minute)        // Y final: off the schedule
	code := postTo(t, srv.URL, SmartFastPayWebhookPath, xh, xbody)
	t.Logf("X's pending callback sent again: %d", code)
	f.pollRounds(e, 3, time.Minute)
	last := f.lastStatusOf(r.ID)
	if last.Status != payout.StatusFailed || deref(last.TransactionID) != y {
		t.Errorf("X and Y both failed (X %s, Y %s), and the request ends %s (transaction %s), not Y's FAILED",
			x, y, last.Status, deref(last.TransactionID))
	}
}
