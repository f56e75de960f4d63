package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// A SmartFastPay payout held three days (longer than RebuildLookback),
// then paid (APPROVED emitted, watched for a refund), then refunded; a
// WEpayout payment processing as long, then paid. Every callback is lost,
// and Redis loses everything after both changes and before the poll that
// would have read them (every 30 minutes at that age). The rebuild listed
// both, but took a final single payout only when created within
// RebuildLookback: neither went back on the schedule, the RETURNED and the
// APPROVED were never emitted, and the requests stayed APPROVED and PENDING
// for good. A final status that changed within RebuildLookback is as
// recent as the webhook that Redis's loss may have cost.
func TestRebuildTakesSinglePayoutsSettledAfterALongHold(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	sfpClock := s.sfp.Config().Clock.(*sfptest.ManualClock)
	wepClock := s.wep.Config().Clock.(*weptest.ManualClock)
	advance := func(d time.Duration) {
		f.clock.Advance(d)
		sfpClock.Advance(d)
		wepClock.Advance(d)
	}
	ctx := context.Background()
	poll := func(what string) PollResult {
		t.Helper()
		res, err := e.PollOnce(ctx)
		if err != nil {
			t.Fatalf("%s: %+v %v", what, res, err)
		}
		return res
	}
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	wp, sp := f.wepPayout(srv.URL, "99"), f.sfpPayout(srv.URL, "99") // both stay pending
	f.handOff(s.wepc, wp)
	f.handOff(s.sfpc, sp)
	if res := poll("first poll"); res.Transitions != 2 {
		t.Fatalf("first poll: %+v, want both PENDING", res)
	}
	// Three days on hold, polled all along.
	for range 72 {
		advance(time.Hour)
		poll("hourly poll")
	}
	// SmartFastPay pays; the poll emits APPROVED and keeps it watched.
	if err := s.sfp.SetStatus(sp.ID, "success"); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	advance(time.Hour)
	if res := poll("poll after the payment"); res.Transitions != 1 {
		t.Fatalf("poll after the payment: %+v, want the APPROVED", res)
	}
	// SmartFastPay refunds it and WEpayout pays; their callbacks are lost,
	// and Redis loses everything before the next poll.
	advance(5 * time.Minute)
	s.settle(t, wp.ID, "3", sp.ID, "refunded")
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		advance(time.Hour)
		poll("poll after the loss")
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	// A status emitted again (the APPROVED the RETURNED implies, after the
	// loss) carries the eventId it had.
	ids := map[string]string{}
	for _, ev := range evs {
		k := ev.RequestID + "/" + string(ev.Status)
		if id, ok := ids[k]; ok && id != ev.EventID {
			t.Errorf("%s emitted under eventIds %s and %s", k, id, ev.EventID)
		}
		ids[k] = ev.EventID
	}
	for id, want := range map[string]payout.Status{wp.ID: payout.StatusApproved, sp.ID: payout.StatusReturned} {
		if got := statusesOf(evs, id); len(got) == 0 || got[len(got)-1] != want {
			t.Errorf("%s: %v, want it to end %s", id, got, want)
		}
	}
}
