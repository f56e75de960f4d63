package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// TestWompiFailureOfPayoutNotHandedOffDoesNotFailTheRequest with the
// request's key holding no confirmed status: the dispatcher's SUBMITTED of
// the adopted transaction was begun at the gate and its produce failed
// (abandoned: the key holds only that attempt). followsOther then reads the
// attempt's transaction: the other payout's FAILED must not be emitted, or
// it ends the request while the adopted transaction pays (a new life after
// a FAILED), and the marketplace, reading FAILED, pays the payee again.
func TestWompiFailureOfPayoutNotHandedOffWhileTheAdoptedSubmittedWasAbandoned(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, srv := f.engine()
	ctx := context.Background()
	secret := f.sim.Config().EventsSecret
	adopted := f.payee("1234567890")
	again := adopted
	again.AccountNumber = "1234567007" // the simulator fails it (D07)
	other := f.submit(false, again)    // its POST's answer lost: no hand-off
	c := f.submit(true, adopted)       // posted again, adopted, handed off
	r := adopted.Reference

	// The dispatcher's SUBMITTED through the gate; its produce fails.
	g := NewGate(f.redis.Client(), f.prefix, time.Minute)
	ep, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := g.Begin(ctx, ep, []GateItem{{ID: r, To: string(payout.StatusSubmitted), Ref: c.txs[0].ID}})
	if err != nil || tk.Verdicts[0] != GateOurs {
		t.Fatalf("gate begin: %+v %v", tk, err)
	}
	if err := g.End(ctx, tk, false); err != nil {
		t.Fatal(err)
	}

	otx := other.txs[0]
	body, sum := txWebhook(t, secret, otx.ID, other.payoutID, otx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("FAILED webhook of the payout not handed off: %d", code)
	}
	// The adopted transaction pays.
	f.sim.Advance(5 * time.Second)
	body, sum = txWebhook(t, secret, c.txs[0].ID, c.payoutID, c.txs[0].AmountInCents, "APPROVED", nil, t0.Add(time.Minute))
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("APPROVED webhook of the adopted transaction: %d", code)
	}
	got := statusesOf(f.statusEvents(), r)
	t.Logf("request %s: %v", r, got)
	for _, st := range got {
		if st == payout.StatusFailed {
			t.Errorf("request emitted FAILED from a payout not handed off while the adopted transaction pays: %v", got)
		}
	}
	if len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
		t.Errorf("request ends %v, want APPROVED", got)
	}
}
