package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// TestWompiBothPayoutsFailAdoptedPolledFirst is
// TestWompiAdoptedFailureHeldThenOtherFails with the polls in the other
// order (a pair of faults): two payouts under one batch reference (a POST
// whose answer was lost, then a lookup behind the create), both
// transactions of request R fail. The adopted one's FAILED is held while
// the other is PENDING; the other fails too, and the adopted payout is
// polled first: its FAILED is emitted, ending R. The other payout, put on
// the schedule by the hold, is polled next: it has no hand-off, and
// followsOther let its FAILED through because the key's FAILED "restarts"
// the request (requestRestart). R then had two FAILED: the marketplace,
// which asks again on a FAILED, acts on it twice.
func TestWompiBothPayoutsFailAdoptedPolledFirst(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine()
	ctx := context.Background()
	secret := f.sim.Config().EventsSecret
	first := f.payee("1234567890")
	first.AccountNumber = "1234567007" // both fail
	batchID := "batch-" + shortName(t)
	c := f.submitUnder(true, batchID, "key-b-"+batchID, first) // adopted
	f.sendPending(srv.URL, c, 0)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.sim.Advance(5 * time.Second)
	other := f.submitUnder(false, batchID, "key-a-"+batchID, first)
	tx := c.txs[0]
	body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("FAILED webhook of the adopted transaction: %d", code)
	}
	if got := statusesOf(f.statusEvents(), first.Reference); len(got) != 1 || got[0] != payout.StatusPending {
		t.Fatalf("while the other payout is PENDING: %v, want [PENDING]", got)
	}
	f.sim.Advance(5 * time.Second) // the other one fails too
	// The adopted payout is polled first: the lookup lists the other
	// transaction FAILED, and the adopted failure is emitted.
	if err := f.sub.Reschedule(ctx, other.payoutID, f.clock.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.sub.Reschedule(ctx, c.payoutID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := statusesOf(f.statusEvents(), first.Reference); len(got) != 2 || got[1] != payout.StatusFailed {
		t.Fatalf("after the adopted payout's poll: %v, want [PENDING FAILED]", got)
	}
	// Then the other payout.
	if err := f.sub.Reschedule(ctx, other.payoutID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Its FAILED webhook comes late too.
	otx := other.txs[0]
	body, sum = txWebhook(t, secret, otx.ID, other.payoutID, otx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0.Add(time.Minute))
	if code := post(t, srv.URL, body, sum); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("FAILED webhook of the other transaction: %d", code)
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
	failed := 0
	for _, st := range got {
		if st == payout.StatusFailed {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("request emitted FAILED %d times, want once: %v", failed, got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Errorf("payouts still on the schedule: %d %v", n, err)
	}
}
