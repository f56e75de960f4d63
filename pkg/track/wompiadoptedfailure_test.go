package track

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The reverse order of TestWompiFailureOfPayoutNotHandedOffDoesNotFailTheRequest
// (a pair of faults), the Wompi counterpart of the single rails'
// adoptedFailure: the dispatcher's POST of batch B is answered late or
// never (its answer lost), its lookup by reference is served from a
// listing behind the create, and it posts B again: Wompi holds two payouts
// under B's reference, both paying request R. The second one is adopted
// (handed off); its transaction fails (the bank refuses the repeated
// transfer) while the first one's pays. The adopted transaction's FAILED
// (its webhook, or a poll of its payout) was emitted, ending R FAILED; the
// other one's APPROVED then followed as a new life. The marketplace reads
// FAILED and asks again: the payee, paid once by Wompi, is paid twice.
// The adopted failure must wait while a lookup by reference lists another
// transaction of R that is paid or may still pay, and the request must
// still end (the payouts are not polled for ever).
func TestWompiAdoptedFailureWhileOtherPayoutPays(t *testing.T) {
	for _, via := range []string{"webhook", "poll"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			e, srv := f.engine()
			ctx := context.Background()
			secret := f.sim.Config().EventsSecret
			first := f.payee("1234567890")
			again := first
			again.AccountNumber = "1234567007" // the simulator fails it (D07)
			batchID := "batch-" + shortName(t)
			other := f.submitUnder(false, batchID, "key-a-"+batchID, first) // its POST's answer lost
			c := f.submitUnder(true, batchID, "key-b-"+batchID, again)      // posted again, adopted
			r := first.Reference
			f.sendPending(srv.URL, c, 0) // the adopted transaction: PENDING
			if via == "poll" {
				// The schedule is rebuilt from a listing behind the other
				// payout's create, whose webhooks have not come: only the
				// adopted payout is polled.
				if _, err := e.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
				if err := f.sub.Done(ctx, other.payoutID); err != nil {
					t.Fatal(err)
				}
				if err := f.sub.Reschedule(ctx, c.payoutID, f.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}

			// Wompi settles: the adopted transaction FAILED, the other
			// one APPROVED (its webhooks not come yet).
			f.sim.Advance(5 * time.Second)
			if tx, err := f.wompi.PayoutTransaction(ctx, other.payoutID, other.txs[0].ID); err != nil || tx.Status != wompi.TransactionApproved {
				t.Fatalf("the other transaction at Wompi: %v %v, want APPROVED", tx, err)
			}
			switch via {
			case "webhook":
				tx := c.txs[0]
				body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
					map[string]string{"code": "D07", "message": "rejected"}, t0)
				if code := post(t, srv.URL, body, sum); code != http.StatusOK {
					t.Fatalf("FAILED webhook of the adopted transaction: %d", code)
				}
			default:
				if _, err := e.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}

			// The other payout's APPROVED comes.
			otx := other.txs[0]
			body, sum := txWebhook(t, secret, otx.ID, other.payoutID, otx.AmountInCents, "APPROVED", nil, t0.Add(time.Minute))
			if code := post(t, srv.URL, body, sum); code != http.StatusOK {
				t.Fatalf("APPROVED webhook of the payout not handed off: %d", code)
			}
			// Polls follow: the adopted payout's FAILED must stay out,
			// and nothing is polled for ever.
			for range 4 {
				f.clock.Advance(time.Hour)
				if _, err := e.PollOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			evs := f.statusEvents()
			checkLog(t, evs)
			got := statusesOf(evs, r)
			t.Logf("request %s: %v", r, got)
			for _, st := range got {
				if st == payout.StatusFailed {
					t.Errorf("request emitted FAILED from the adopted transaction while the other payout pays: %v", got)
				}
			}
			if len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
				t.Errorf("request ends %v, want APPROVED", got)
			}
			if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
				t.Errorf("payouts still on the schedule: %d %v", n, err)
			}
		})
	}
}

// TestWompiAdoptedFailureHeldThenOtherFails: the adopted transaction's
// FAILED is held while the other payout's transaction is PENDING; once
// that one fails too, the adopted failure is emitted (the request does not
// stall PENDING).
func TestWompiAdoptedFailureHeldThenOtherFails(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine()
	ctx := context.Background()
	secret := f.sim.Config().EventsSecret
	first := f.payee("1234567890")
	first.AccountNumber = "1234567007" // both fail
	batchID := "batch-" + shortName(t)
	c := f.submitUnder(true, batchID, "key-b-"+batchID, first) // adopted
	f.sendPending(srv.URL, c, 0)
	if _, err := e.PollOnce(ctx); err != nil { // the schedule's rebuild
		t.Fatal(err)
	}
	// The adopted transaction FAILS at Wompi; the other payout is posted
	// later at the simulator (so still PENDING when the failure comes) but
	// created under the same reference.
	f.sim.Advance(5 * time.Second)
	f.submitUnder(false, batchID, "key-a-"+batchID, first)
	tx := c.txs[0]
	body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("FAILED webhook of the adopted transaction: %d", code)
	}
	if got := statusesOf(f.statusEvents(), first.Reference); len(got) != 1 || got[0] != payout.StatusPending {
		t.Errorf("while the other payout is PENDING: %v, want [PENDING]", got)
	}
	f.sim.Advance(5 * time.Second) // the other one fails too
	// The other payout is polled first (its failure is not the request's
	// while the key follows the adopted transaction: followsOther), then
	// the adopted one, whose failure the lookup no longer holds.
	if err := f.sub.Reschedule(ctx, c.payoutID, f.clock.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.sub.Reschedule(ctx, c.payoutID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	got := statusesOf(evs, first.Reference)
	t.Logf("request: %v", got)
	if len(got) == 0 || got[len(got)-1] != payout.StatusFailed {
		t.Errorf("request ends %v, want FAILED", got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Errorf("payouts still on the schedule: %d %v", n, err)
	}
}

// listedRail is a Wompi rail whose lookup by reference lists one payout
// the simulator does not hold (a test vector's).
type listedRail struct {
	rail.BatchTracking
	payoutID, reference string
}

func (r listedRail) FindBatches(ctx context.Context, reference string) ([]rail.Batch, error) {
	if reference == r.reference {
		return []rail.Batch{{ProviderID: r.payoutID, Reference: reference}}, nil
	}
	return r.BatchTracking.FindBatches(ctx, reference)
}

// unlistingRail is a Wompi rail whose lookup by reference always fails.
type unlistingRail struct{ rail.BatchTracking }

func (unlistingRail) FindBatches(context.Context, string) ([]rail.Batch, error) {
	return nil, &rail.Error{Rail: rail.Wompi, Op: "find", Class: rail.Retryable, HTTPStatus: http.StatusBadGateway, Message: "bad gateway"}
}

// A failure of the adopted transaction waits on Wompi's lookup by the
// batch's reference, which fails here for as long as the test runs: only
// that failure waits. The poll emits the batch's other statuses, and the
// failure once the lookup answers.
func TestWompiAdoptedFailureLookupFailingHoldsOnlyTheFailure(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	lookup := unlistingRail{f.rail(f.wompi, f.sim.Config().EventsSecret)}
	e, _ := f.engine(func(c *Config) { c.Wompi = lookup })
	paid, failed := f.payee("1234567890"), f.payee("1234567007") // the simulator fails …007 (D07)
	f.submit(true, paid, failed)
	f.sim.SettleAll()
	f.clock.Advance(time.Minute)
	res, err := e.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 {
		t.Errorf("poll %+v: the failed lookup is not counted as a poll error", res)
	}
	evs := f.statusEvents()
	if got := statusesOf(evs, paid.Reference); len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
		t.Errorf("paid request: %v, want APPROVED emitted while another transaction's failure waits on the lookup", got)
	}
	if got := statusesOf(evs, failed.Reference); slices.Contains(got, payout.StatusFailed) {
		t.Errorf("failed request: %v, its FAILED emitted with no lookup by reference", got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("%d payouts on the schedule (%v), want the batch still polled", n, err)
	}
}
