package track

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// Two faults lined up on one SmartFastPay payout: its hand-off is missing
// (a partial Redis loss: a failover to a replica that missed the
// dispatcher's pipelined hand-off, while the schedule's ready marker
// stayed, so no rebuild lists the rail), and its onhold callback was lost,
// so the first callback the tracker reads is success. APPROVED is emitted
// from SmartFastPay's GET, but a SmartFastPay APPROVED may still be
// refunded (mayReverse, ReturnWatch): the payout must stay polled. It was
// not put on the schedule (enroll skipped every Final status, APPROVED
// included), so when the refund's callbacks are lost too, RETURNED was
// never emitted and the money that came back stayed APPROVED.
func TestSmartFastPayApprovedWithoutHandOffIsWatchedForAReversal(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "98") // stays onhold until SetStatus
	p, err := s.sfpc.Create(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // the onhold callback is lost
	s.sfp.Advance(time.Second)
	s.wait(t)
	s.sfp.SetFaults(sfptest.Faults{})
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[APPROVED]" {
		t.Fatalf("%s: %v, want the APPROVED of the success callback", r.ID, got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled: %d %v: an APPROVED SmartFastPay payout without hand-off is not watched for a refund", n, err)
	}
	// Refunded; every callback of it is lost: only a poll can see it.
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusRefunded); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[APPROVED RETURNED]" {
		t.Fatalf("%s (payout %s): %v, want [APPROVED RETURNED]", r.ID, rail.HandOffID(rail.SmartFastPay, p.ProviderID), got)
	}
}
