package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// Two single payouts still pending three days after their creation (a
// SmartFastPay hold, a WEpayout payment awaiting): older than
// RebuildLookback. Redis then loses everything (their hand-offs, the
// schedule), and the webhooks of their final statuses are lost. The
// rebuild listed the single rails' payouts of the last RebuildLookback
// only: these two were never polled again, and their requests stayed
// PENDING for ever, with nothing on the schedule for an operator to see.
// As for Wompi's (rebuildPendingLookback), the payouts not final are
// listed further back.
func TestRebuildAfterRedisLossSchedulesOlderPendingSinglePayouts(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	wp, sp := f.wepPayout(srv.URL, "99"), f.sfpPayout(srv.URL, "99") // both stay pending
	f.handOff(s.wepc, wp)
	f.handOff(s.sfpc, sp)
	ctx := context.Background()
	if res, err := e.PollOnce(ctx); err != nil || res.Transitions != 2 {
		t.Fatalf("first poll: %+v %v, want both PENDING", res, err)
	}
	f.clock.Advance(72 * time.Hour)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt || res.Claimed != 2 {
		t.Fatalf("poll after the loss: %+v %v, want both single payouts back on the schedule", res, err)
	}
	// Both settle; their webhooks are lost: only a poll can tell.
	s.settle(t, wp.ID, "3", sp.ID, "failed")
	f.clock.Advance(time.Hour)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for id, want := range map[string]string{wp.ID: "APPROVED", sp.ID: "FAILED"} {
		if got := statusesOf(evs, id); len(got) == 0 || string(got[len(got)-1]) != want {
			t.Errorf("%s: %v, want it to end %s", id, got, want)
		}
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Fatalf("scheduled at the end: %d %v", n, err)
	}
}
