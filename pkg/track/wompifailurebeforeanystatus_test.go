package track

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// The Wompi counterpart of TestFailureBeforeAnyStatusWhileTheDispatcherPostsAnother
// (a pair of faults): the answer to the dispatcher's POST of batch O is
// lost, and O's transaction for request R fails at once. Its FAILED
// (webhook, or a poll of O enrolled by an earlier webhook) is read while
// R's status key is still empty: no hand-off maps O, and followsOther
// finds no other transaction to follow, so the FAILED was emitted. The
// dispatcher's lookup by reference, served from a copy behind, then
// misses O: it posts H, hands it off and writes H's SUBMITTED (a new
// life after another transaction's FAILED), and H pays. The marketplace,
// which asks again on a FAILED, pays the payee twice.
func TestWompiFailureBeforeAnyStatusWhileTheDispatcherPostsAnother(t *testing.T) {
	for _, via := range []string{"webhook", "poll"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			e, srv := f.engine()
			mustEpoch(t, e.statuses) // the status epoch, as the poller writes it at start
			ctx := context.Background()
			secret := f.sim.Config().EventsSecret
			payee := f.payee("1234567890")
			bad := payee
			bad.AccountNumber = "1234567007" // the simulator fails it (D07)
			r := payee.Reference
			o := f.submit(false, bad) // O: its POST's answer lost, no hand-off
			otx := o.txs[0]
			switch via {
			case "webhook":
				body, sum := txWebhook(t, secret, otx.ID, o.payoutID, otx.AmountInCents, "FAILED",
					map[string]string{"code": "D07", "message": "rejected"}, t0)
				if code := post(t, srv.URL, body, sum); code != http.StatusOK && code != http.StatusAccepted {
					t.Fatalf("FAILED webhook of O: %d", code)
				}
			default:
				if err := f.sub.Schedule(ctx, o.payoutID, f.clock.Now()); err != nil {
					t.Fatal(err)
				}
				f.sim.Advance(5 * time.Second)
				if _, err := e.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}

			// The dispatcher's lookup missed O: H is posted and handed
			// off, and its SUBMITTED goes through the gate.
			since, err := e.statuses.epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := f.submit(true, payee)
			g := NewGate(f.redis.Client(), f.prefix, time.Minute)
			tk, err := g.Begin(ctx, since, []GateItem{{ID: r, To: string(payout.StatusSubmitted), Ref: h.txs[0].ID}})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("the dispatcher's SUBMITTED of H: verdict %d (0: granted)", tk.Verdicts[0])
			if tk.Verdicts[0] == GateOurs {
				if err := g.End(ctx, tk, true); err != nil {
					t.Fatal(err)
				}
			}

			// H pays; the tracker keeps polling past handOffWait.
			f.sim.Advance(5 * time.Second)
			body, sum := txWebhook(t, secret, h.txs[0].ID, h.payoutID, h.txs[0].AmountInCents, "APPROVED", nil, t0.Add(time.Minute))
			if code := post(t, srv.URL, body, sum); code != http.StatusOK {
				t.Fatalf("APPROVED webhook of H: %d", code)
			}
			for range 3 {
				f.clock.Advance(handOffWait)
				if _, err := e.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			evs := f.statusEvents()
			checkLog(t, evs)
			got := statusesOf(evs, r)
			t.Logf("request %s: %v", r, got)
			if slices.Contains(got, payout.StatusFailed) || len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
				t.Fatalf("%s: %v: the FAILED of a batch never handed off, read before the request had any status, ended the request another batch pays", r, got)
			}
		})
	}
}

// The usual order the hold above must not stall: the POST of C answered,
// C's transaction fails at once and its FAILED webhook beats the
// dispatcher's hand-off. Kept back (no status yet), the FAILED is emitted
// by C's next poll once the hand-off lands (adoptedTxFailure decides),
// well before handOffWait.
func TestWompiFailureBeforeItsOwnHandOffEmittedOnceHandedOff(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine()
	mustEpoch(t, e.statuses) // the status epoch, as the poller writes it at start
	ctx := context.Background()
	c := f.submit(false, f.payee("1234567007")) // its hand-off not written yet
	f.sim.Advance(5 * time.Second)              // Wompi fails it (D07)
	tx := c.txs[0]
	body, sum := txWebhook(t, f.sim.Config().EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("FAILED webhook before the hand-off: %d", code)
	}
	if got := statusesOf(f.statusEvents(), tx.Reference); len(got) != 0 {
		t.Fatalf("%s: %v before the hand-off, want it kept back", tx.Reference, got)
	}
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: c.payoutID, BatchID: c.batchID, OriginAccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypeProviders, TotalAmountInCents: tx.AmountInCents, TransactionCount: 1, SubmittedAt: f.clock.Now()},
		[]submitted.Transaction{{TransactionID: tx.ID, RequestID: tx.Reference, BatchID: c.batchID, PayoutID: c.payoutID,
			AmountInCents: tx.AmountInCents, OriginAccountID: wompitest.AccountMain}}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, tx.Reference); !slices.Equal(got, []payout.Status{payout.StatusFailed}) {
		t.Fatalf("%s: %v, want [FAILED] within minutes of the hand-off", tx.Reference, got)
	}
}

// After a Redis loss the hand-off and the key are gone: the empty key
// proves nothing (the status epoch is newer than the batch), so the
// failure does not wait for a hand-off (it would delay every failure read
// after a loss by handOffWait); with no other payout under the batch's
// reference it is emitted at once, by its webhook.
func TestWompiFailureAfterRedisLossEmittedAtOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	e, srv := f.engine()
	mustEpoch(t, e.statuses) // the status epoch, as the poller writes it at start
	ctx := context.Background()
	c := f.submit(true, f.payee("1234567007"))
	f.sendPending(srv.URL, c, 0)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	f.sim.Advance(5 * time.Second) // Wompi fails it (D07)
	tx := c.txs[0]
	body, sum := txWebhook(t, f.sim.Config().EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	for try := 0; ; try++ {
		code := post(t, srv.URL, body, sum)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || try == 50 {
			t.Fatalf("FAILED webhook after the loss: %d", code)
		}
		time.Sleep(100 * time.Millisecond) // busy within the loss grace
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, tx.Reference); !slices.Equal(got, []payout.Status{payout.StatusPending, payout.StatusFailed}) {
		t.Fatalf("%s: %v, want [PENDING FAILED] at once after the loss", tx.Reference, got)
	}
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
}
