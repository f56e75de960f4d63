package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// followsOther holds back a failure of a Wompi transaction no hand-off maps
// only while the request follows ANOTHER transaction whose life has not
// ended. The two tests below are the failures it must let through; held
// back, the request's final status is lost (it stays PENDING for good, or
// the marketplace's second attempt is never answered).

// The dispatcher's POST of a batch is answered late or never: no hand-off.
// Its transaction's PENDING webhook maps it from Wompi, and the request's
// key follows that very transaction. Its FAILED (the bank refuses the
// account) is the request's own end and must be emitted, by its webhook
// or by the poll of the payout its webhook enrolled: not the failure of a
// payout not adopted.
func TestWompiFailureOfTheTransactionTheRequestFollowsIsEmitted(t *testing.T) {
	for _, via := range []string{"webhook", "poll"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			e, srv := f.engine()
			secret := f.sim.Config().EventsSecret
			c := f.submit(false, f.payee("1234567007")) // the simulator fails it (D07); its POST's answer lost
			r := c.txs[0].Reference
			f.sendPending(srv.URL, c, 0)
			failTransaction(t, f, e, srv.URL, secret, c, via)

			got := statusesOf(f.statusEvents(), r)
			t.Logf("request %s: %v", r, got)
			if len(got) == 0 || got[len(got)-1] != payout.StatusFailed {
				t.Errorf("request ends %v, want FAILED: the failure of the only transaction it follows was not emitted", got)
			}
		})
	}
}

// A request's transaction FAILED (handed off, emitted). The marketplace
// asks again; the dispatcher posts the request again, its POST's answer
// lost (no hand-off), and the new transaction fails too, its PENDING
// webhook lost. The request's key follows the first transaction, whose
// life ended FAILED: the new transaction's FAILED starts a new life
// (requestRestart) and must be emitted, or the second attempt is never
// answered.
func TestWompiFailureOfANewLifeWithoutHandOffIsEmitted(t *testing.T) {
	for _, via := range []string{"webhook", "poll"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			e, srv := f.engine()
			ctx := context.Background()
			secret := f.sim.Config().EventsSecret
			p := f.payee("1234567007") // the simulator fails it (D07)
			first := f.submit(true, p)
			r := p.Reference
			f.sendPending(srv.URL, first, 0)
			tx := first.txs[0]
			body, sum := txWebhook(t, secret, tx.ID, first.payoutID, tx.AmountInCents, "FAILED",
				map[string]string{"code": "D07", "message": "rejected"}, t0)
			if code := post(t, srv.URL, body, sum); code != http.StatusOK {
				t.Fatalf("FAILED webhook of the first transaction: %d", code)
			}
			// The first payout settles at Wompi too, and leaves the schedule.
			f.sim.Advance(5 * time.Second)
			if _, err := e.PollOnce(ctx); err != nil {
				t.Fatal(err)
			}

			again := f.submit(false, p) // asked again; its POST's answer lost
			failTransaction(t, f, e, srv.URL, secret, again, via)

			evs := f.statusEvents()
			got := statusesOf(evs, r)
			t.Logf("request %s: %v", r, got)
			var second int
			for _, ev := range evs {
				if ev.RequestID == r && ev.Status == payout.StatusFailed && deref(ev.TransactionID) == again.txs[0].ID {
					second++
				}
			}
			if second != 1 {
				t.Errorf("%d FAILED of the second attempt's transaction emitted, want 1: %v", second, got)
			}
		})
	}
}

// failTransaction makes c's first transaction FAILED at the tracker: by
// its signed webhook, or by a poll of its payout once Wompi settled it.
func failTransaction(t *testing.T, f *fixture, e *Engine, url, secret string, c created, via string) {
	t.Helper()
	ctx := context.Background()
	tx := c.txs[0]
	switch via {
	case "webhook":
		body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
			map[string]string{"code": "D07", "message": "rejected"}, t0.Add(time.Minute))
		if code := post(t, url, body, sum); code != http.StatusOK {
			t.Fatalf("FAILED webhook of %s: %d", tx.Reference, code)
		}
	default:
		// On the schedule (its PENDING webhook enrolled it, or a rebuild
		// listed it) and due now.
		if err := f.sub.Schedule(ctx, c.payoutID, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if err := f.sub.Reschedule(ctx, c.payoutID, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		f.sim.Advance(5 * time.Second)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// The scenario of TestWompiFailureOfPayoutNotHandedOffDoesNotFailTheRequest:
// the FAILED webhook of the payout not adopted is not emitted, but that
// payout must go on the polling schedule (it has no hand-off, and its other
// webhooks may be lost): another of its transactions may pay a request whose
// adopted transaction then fails, and only its poll reports that payment
// before the marketplace, reading FAILED, asks again.
func TestWompiFailureNotEmittedStillEnrollsThePayoutNotAdopted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, srv := f.engine()
	ctx := context.Background()
	secret := f.sim.Config().EventsSecret
	adopted := f.payee("1234567890")
	again := adopted
	again.AccountNumber = "1234567007" // the simulator fails it (D07)
	other := f.submit(false, again)    // its POST's answer lost: no hand-off
	c := f.submit(true, adopted)       // posted again, adopted, handed off
	f.sendPending(srv.URL, c, 0)
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled before the webhook: %d %v, want the adopted payout alone", n, err)
	}

	otx := other.txs[0]
	body, sum := txWebhook(t, secret, otx.ID, other.payoutID, otx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("FAILED webhook of the payout not handed off: %d", code)
	}
	if got := statusesOf(f.statusEvents(), adopted.Reference); len(got) != 1 || got[0] != payout.StatusPending {
		t.Fatalf("request %v, want [PENDING]: the failure of the payout not adopted was emitted", got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 2 {
		t.Errorf("scheduled: %d %v, want 2: the payout not adopted, whose failure was held back, is on no schedule", n, err)
	}
}
