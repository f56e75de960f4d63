package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair (review of bab6f17): two payouts under one requestId at
// SmartFastPay, X (the answer to its POST lost) and Y (posted after a
// lookup that missed X, handed off). X paid: its APPROVED, read from
// SmartFastPay, was emitted; Y failed, its FAILED stale after it. Then
// Redis loses its data (no hand-off, no status key) and X is refunded.
// X's RETURNED waited for Y, a later payout that ended too (createdAfter),
// and Y's FAILED, finding X only RETURNED, was emitted: the request read
// APPROVED then FAILED, and X's RETURNED was kept back for good (the key
// followed Y). A refund ends the life X's APPROVED started: RETURNED.
func TestSmartFastPayPaidThenRefundedNotFailedByALaterPayout(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, func(c *Config) { c.LossGrace = -1 })
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // callbacks posted by hand below
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "21")                  // onhold, success, then refunded
	if _, err := s.sfpc.Create(ctx, r); err != nil { // X: its answer lost
		t.Fatal(err)
	}
	s.sfp.Advance(2 * time.Second) // X paid
	s.wait(t)
	if st, _ := s.sfp.Status(r.ID); st != smartfastpay.StatusSuccess {
		t.Fatalf("X: %s", st)
	}
	f.deliverSFPCallback(s, srv.URL, r.ID) // X's APPROVED
	f.handOff(s.sfpc, r)                   // Y
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's FAILED: stale after APPROVED
	if got := statusesOf(f.statusEvents(), r.ID); len(got) != 1 || got[0] != payout.StatusApproved {
		t.Fatalf("before the loss: %v", got)
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	s.sfp.Advance(5 * time.Second) // X refunded
	s.wait(t)
	f.pollRounds(e, 4, time.Minute) // the rebuild lists both
	evs := f.statusEvents()
	got := statusesOf(evs, r.ID)
	if last := f.lastStatusOf(r.ID); last.Status != payout.StatusReturned {
		t.Errorf("X paid then was refunded, and the request ends %s (transaction %s), not RETURNED: %v",
			last.Status, deref(last.TransactionID), got)
	}
	checkLog(t, evs)
}
