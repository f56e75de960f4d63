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
	f.approvedWithoutHandOff(s, r)
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled: %d %v: an APPROVED SmartFastPay payout without hand-off is not watched for a refund", n, err)
	}
	f.refundedUnwatched(s, e, r.ID, time.Minute)
}

// approvedWithoutHandOff creates r at SmartFastPay (through s.sfpc) with
// no hand-off, its onhold callback lost, then pays it: the tracker emits
// the APPROVED of the success callback, checked.
func (f *fixture) approvedWithoutHandOff(s *singles, r rail.PayoutRequest) {
	f.t.Helper()
	if _, err := s.sfpc.Create(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // the onhold callback is lost
	s.sfp.Advance(time.Second)
	s.wait(f.t)
	s.sfp.SetFaults(sfptest.Faults{})
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil {
		f.t.Fatal(err)
	}
	s.wait(f.t)
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[APPROVED]" {
		f.t.Fatalf("%s: %v, want the APPROVED of the success callback", r.ID, got)
	}
}

// refundedUnwatched refunds SmartFastPay's payout of requestID, APPROVED,
// with every callback of it lost, polls after wait, and checks that only
// the poll saw it: [APPROVED RETURNED].
func (f *fixture) refundedUnwatched(s *singles, e *Engine, requestID string, wait time.Duration) {
	f.t.Helper()
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	if err := s.sfp.SetStatus(requestID, smartfastpay.StatusRefunded); err != nil {
		f.t.Fatal(err)
	}
	s.wait(f.t)
	f.clock.Advance(wait)
	if _, err := e.PollOnce(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	evs := f.statusEvents()
	checkLog(f.t, evs)
	if got := statusesOf(evs, requestID); fmt.Sprint(got) != "[APPROVED RETURNED]" {
		f.t.Fatalf("%s: %v, want [APPROVED RETURNED]", requestID, got)
	}
}
