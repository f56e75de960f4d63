package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The Wompi counterpart of TestNonAdoptedFailedPayoutDoesNotFailTheRequest
// (a pair of faults): the dispatcher's POST of a batch is answered late or
// never (its answer lost), its lookup by reference is served from a listing
// behind the create, and it posts the batch again: Wompi holds two payouts
// paying request R (the dispatcher logs "payees may be paid more than
// once"). The one it adopted is handed off and its transaction is PENDING;
// the other one's transaction fails (the bank refuses the repeated
// transfer). Its signed FAILED webhook has no hand-off: Wompi maps it to R,
// and it was emitted, ending R FAILED while the adopted transaction pays;
// that transaction's APPROVED then followed as a new life. The marketplace
// reads FAILED and asks again: the payee, paid once by Wompi, is paid twice.
// A poll of the other payout (enrolled by its webhook) emitted the same
// FAILED.
func TestWompiFailureOfPayoutNotHandedOffDoesNotFailTheRequest(t *testing.T) {
	for _, via := range []string{"webhook", "poll"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			e, srv := f.engine()
			ctx := context.Background()
			secret := f.sim.Config().EventsSecret
			adopted := f.payee("1234567890")
			again := adopted
			again.AccountNumber = "1234567007" // the simulator fails it (D07)
			other := f.submit(false, again)    // its POST's answer lost: no hand-off
			c := f.submit(true, adopted)       // posted again, adopted, handed off
			r := adopted.Reference
			f.sendPending(srv.URL, c, 0) // the adopted transaction: PENDING

			otx := other.txs[0]
			switch via {
			case "webhook":
				body, sum := txWebhook(t, secret, otx.ID, other.payoutID, otx.AmountInCents, "FAILED",
					map[string]string{"code": "D07", "message": "rejected"}, t0)
				if code := post(t, srv.URL, body, sum); code != http.StatusOK && code != http.StatusAccepted {
					t.Fatalf("FAILED webhook of the payout not handed off: %d", code)
				}
			default:
				// The other payout is on the schedule (its webhook, or a
				// rebuild), and Wompi settles: the adopted transaction is
				// still PENDING when the other one's poll reads its FAILED.
				if err := f.sub.Schedule(ctx, other.payoutID, f.clock.Now()); err != nil {
					t.Fatal(err)
				}
				if err := f.sub.Reschedule(ctx, c.payoutID, f.clock.Now().Add(24*time.Hour)); err != nil {
					t.Fatal(err)
				}
				f.sim.Advance(5 * time.Second)
				if _, err := e.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}

			// The adopted transaction pays.
			f.sim.Advance(5 * time.Second)
			body, sum := txWebhook(t, secret, c.txs[0].ID, c.payoutID, c.txs[0].AmountInCents, "APPROVED", nil, t0.Add(time.Minute))
			if code := post(t, srv.URL, body, sum); code != http.StatusOK {
				t.Fatalf("APPROVED webhook of the adopted transaction: %d", code)
			}
			evs := f.statusEvents()
			got := statusesOf(evs, r)
			t.Logf("request %s: %v", r, got)
			for _, st := range got {
				if st == payout.StatusFailed {
					t.Errorf("request emitted FAILED from a payout not handed off while the adopted transaction pays: %v", got)
				}
			}
			if len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
				t.Errorf("request ends %v, want APPROVED", got)
			}
		})
	}
}
