package track

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair: a SmartFastPay payout handed off is held onhold for longer
// than ReturnWatch (a compliance hold: pending -> onhold -> success), and
// the callbacks of its refund, which follows its payment, are lost. The
// return watch ran from the submission: the first poll that read the
// payout paid found it older than ReturnWatch and took it off the
// schedule, so a payout paid late was watched for a refund not at all.
// Its RETURNED was never emitted: the request stayed APPROVED while the
// payee's money came back. The watch runs from the payment too.
func TestSmartFastPayPaidAfterLongHoldIsWatchedForARefund(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil) // ReturnWatch: 24 h
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "98") // stays onhold until SetStatus
	f.handOff(s.sfpc, r)
	advance := func(d time.Duration) {
		f.clock.Advance(d)
		s.sfp.Advance(d)
		s.wait(t)
	}
	advance(time.Second) // onhold: its callback emits PENDING
	// Held onhold past ReturnWatch, polled meanwhile.
	for range 26 {
		advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Paid: its success callback emits APPROVED; the next poll reads it.
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	advance(e.cfg.PollMaxBackoff)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("%s: %v, want [PENDING APPROVED]", r.ID, got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("scheduled after the poll that read it paid: %d %v: a payout paid just now is not watched for a refund", n, err)
	}
	// Refunded two hours after its payment; every callback of it is lost.
	advance(time.Hour)
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusRefunded); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	advance(e.cfg.PollMaxBackoff)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[PENDING APPROVED RETURNED]" {
		t.Fatalf("%s: %v, want [PENDING APPROVED RETURNED]: the refund of a payout paid after a long hold was never emitted", r.ID, got)
	}
}

// The pair: the answer to the POST of X is lost, and the dispatcher's
// lookup by our id, served from a copy behind, misses X: Y is posted,
// adopted and handed off. Y fails (a provider may fail the second payout
// of one id) while X pays, and X's callbacks are lost. Y's FAILED, having
// a hand-off, was emitted without asking whether another payout under our
// id may still pay; X's APPROVED, read by a later poll or callback,
// followed it as a new life. The marketplace reads FAILED and asks again:
// the payee is paid twice. Y's failure must wait while X may pay.
func TestAdoptedPayoutFailureNotEmittedWhileAnotherPays(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "00")                  // paid along its path
	if _, err := s.sfpc.Create(ctx, r); err != nil { // X: its answer lost, never handed off
		t.Fatal(err)
	}
	f.handOff(s.sfpc, r)                                                     // Y: the lookup missed X
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil { // Y fails; its callback is delivered
		t.Fatal(err)
	}
	s.wait(t)
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // X's callbacks are lost
	for range 10 {
		s.sfp.Advance(time.Minute)
		s.wait(t)
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.sfp.Status(r.ID); st != smartfastpay.StatusFailed {
		t.Fatalf("Y at SmartFastPay: %s", st)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	got := statusesOf(evs, r.ID)
	if len(got) == 0 || got[len(got)-1] != payout.StatusApproved || slices.Contains(got, payout.StatusFailed) {
		t.Fatalf("%s: %v: the adopted payout's FAILED was emitted while another payout under our id paid, or X's APPROVED never was", r.ID, got)
	}
}

// The guard of adoptedFailure's exception: a requestId paid by X, then
// sent again after DEDUPE_WINDOW (and the status TTL): the dispatcher pays
// it again with Y, which fails. X, paid in the earlier life, may pay
// nothing more: Y's FAILED ends the second life.
func TestAdoptedPayoutFailureAfterAnEarlierLifesPayment(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "00")
	if _, err := s.sfpc.Create(ctx, r); err != nil { // X, paid
		t.Fatal(err)
	}
	for range 5 {
		s.sfp.Advance(time.Minute)
	}
	s.wait(t)
	if st, _ := s.sfp.Status(r.ID); st != smartfastpay.StatusSuccess {
		t.Fatalf("X at SmartFastPay: %s", st)
	}
	// X's return watch ends: off the schedule.
	f.clock.Advance(25 * time.Hour)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Fatalf("scheduled after X's watch: %d %v", n, err)
	}
	// Sent again 31 days later: the request's status key has run out.
	s.sfp.Advance(31 * 24 * time.Hour)
	f.clock.Advance(31 * 24 * time.Hour)
	if err := f.redis.Client().Del(ctx, e.statuses.key(kindRequest, r.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	f.handOff(s.sfpc, r) // Y
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	for range 3 {
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := statusesOf(f.statusEvents(), r.ID)
	if len(got) == 0 || got[len(got)-1] != payout.StatusFailed {
		t.Fatalf("%s: %v: the second life's FAILED was not its last status", r.ID, got)
	}
}
