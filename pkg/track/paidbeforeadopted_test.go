package track

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair: the answer to the POST of X is lost and X's callbacks are
// lost too; X pays within a minute or two (PIX), before the dispatcher,
// which waits RECOVERY_GRACE after an unknown outcome, looks the payee up.
// Its lookup, served from a copy behind, misses X: Y is posted, adopted
// and handed off, and Y fails. adoptedFailure took X, which ended before
// Y was created, for an earlier life's payout (the requestId sent again
// after DEDUPE_WINDOW) and emitted Y's FAILED: the request ended FAILED
// while X paid it, and X, never handed off nor scheduled, had its APPROVED
// never emitted. The marketplace asks again on a FAILED: paid twice. An
// earlier life's paid payout whose status was emitted ended more than
// StatusTTL ago (its status key ran out, or the key would follow it).
func TestAdoptedPayoutFailureWhileAnotherPaidBeforeItsCreation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	// The schedule's first rebuild (a fresh Redis) is done: nothing lists
	// X to the tracker but the lookup by our id.
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // every callback lost
	r := f.sfpPayout(srv.URL, "00")                     // paid along its path
	if _, err := s.sfpc.Create(ctx, r); err != nil {    // X: its answer lost, never handed off
		t.Fatal(err)
	}
	for range 5 {
		s.sfp.Advance(time.Minute)
		f.clock.Advance(time.Minute)
	}
	s.wait(t)
	if st, _ := s.sfp.Status(r.ID); st != smartfastpay.StatusSuccess {
		t.Fatalf("X at SmartFastPay: %s", st)
	}
	f.handOff(s.sfpc, r)                                                     // Y: the lookup missed X
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil { // Y fails
		t.Fatal(err)
	}
	s.wait(t)
	for range 10 {
		s.sfp.Advance(time.Minute)
		s.wait(t)
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	got := statusesOf(evs, r.ID)
	if len(got) == 0 || got[len(got)-1] != payout.StatusApproved || slices.Contains(got, payout.StatusFailed) {
		t.Fatalf("%s: %v: the adopted payout's FAILED was emitted while another payout under our id, paid before it was made, paid the request", r.ID, got)
	}
}
