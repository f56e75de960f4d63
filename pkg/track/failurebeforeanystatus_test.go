package track

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair: the answer to the POST of X is lost, and X fails at once
// (its callback delivered while the dispatcher waits RECOVERY_GRACE
// before its lookup). The request's status key is empty (no SUBMITTED
// yet) and X has no hand-off; the rail's lookup lists X alone (Y is not
// posted yet), so failureOfOther found no other payout and X's FAILED was
// emitted. The dispatcher's lookup, served from a copy behind, then
// misses X: Y is posted, handed off, its SUBMITTED granted by the gate as
// a new life (after another transaction's FAILED), and Y pays. The
// marketplace, which asks again on a FAILED, pays the payee twice.
func TestFailureBeforeAnyStatusWhileTheDispatcherPostsAnother(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	mustEpoch(t, e.statuses) // the status epoch, as the poller writes it at start
	ctx := context.Background()
	if _, err := e.PollOnce(ctx); err != nil { // the first rebuild (a fresh Redis) done
		t.Fatal(err)
	}
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // callbacks posted by hand below
	r := f.sfpPayout(srv.URL, "98")                     // onhold until SetStatus
	if _, err := s.sfpc.Create(ctx, r); err != nil {    // X: its answer lost
		t.Fatal(err)
	}
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // X's FAILED: no hand-off, no status yet

	// The dispatcher's lookup missed X: Y is posted and handed off, and
	// its SUBMITTED goes through the gate.
	since, err := e.statuses.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	y := f.handOff(s.sfpc, r)
	g := NewGate(f.redis.Client(), f.prefix, time.Minute)
	tk, err := g.Begin(ctx, since, []GateItem{{ID: r.ID, To: string(payout.StatusSubmitted), Ref: y}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the dispatcher's SUBMITTED of Y: verdict %d (0: granted)", tk.Verdicts[0])
	if tk.Verdicts[0] == GateOurs {
		if err := g.End(ctx, tk, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil { // Y pays
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's APPROVED
	for range 3 {
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	got := statusesOf(evs, r.ID)
	t.Logf("request %s: %v", r.ID, got)
	if slices.Contains(got, payout.StatusFailed) || len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
		t.Fatalf("%s: %v: the FAILED of a payout never adopted, read before the request had any status, ended the request another payout pays", r.ID, got)
	}
}

// The usual order the hold above must not stall: X's POST answered, X
// fails at once and its callback beats the dispatcher's hand-off. Kept
// back (no status yet), X's FAILED is emitted by its next poll once the
// hand-off lands (adoptedFailure), well before handOffWait.
func TestFailureBeforeItsOwnHandOffEmittedOnceHandedOff(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	mustEpoch(t, e.statuses) // the status epoch, as the poller writes it at start
	ctx := context.Background()
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	r := f.sfpPayout(srv.URL, "98")
	x, err := s.sfpc.Create(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // before the hand-off
	f.handOffRecord(rail.SmartFastPay, x.ProviderID, r)
	for range 3 {
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, r.ID); !slices.Equal(got, []payout.Status{payout.StatusFailed}) {
		t.Fatalf("%s: %v, want [FAILED] within minutes of the hand-off", r.ID, got)
	}
}
