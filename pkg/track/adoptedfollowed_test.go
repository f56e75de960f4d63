package track

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// adoptedFailure's followed case: X, whose answer was lost, paid and its
// webhook emitted APPROVED (the request's status key follows X); Y, posted
// after a lookup that missed X, adopted and handed off, fails. Y's FAILED
// is not emitted (X paid), and Y leaves the schedule: the request's end is
// X's. Held as if X might still pay instead, Y (and X) would be polled for
// ever, its failure counted held, and never emitted nor dropped.
func TestAdoptedFailureWhileTheKeyFollowsAnotherPaidPayoutLeavesTheSchedule(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1}) // webhooks posted by hand below
	ctx := context.Background()
	r := f.wepPayout(srv.URL, "99")
	if _, err := s.wepc.Create(ctx, r); err != nil { // X: its answer lost, no hand-off
		t.Fatal(err)
	}
	if err := s.wep.SetStatus(r.ID, "3"); err != nil { // X pays
		t.Fatal(err)
	}
	s.wait(t)
	f.deliverWEPWebhook(s, srv.URL, r.ID)              // X's APPROVED: the key follows X
	y := f.handOff(s.wepc, r)                          // Y: posted after a lookup that missed X
	if err := s.wep.SetStatus(r.ID, "4"); err != nil { // Y fails, its webhook lost
		t.Fatal(err)
	}
	s.wait(t)
	for range 2 {
		f.clock.Advance(time.Minute)
		res, err := e.PollOnce(ctx)
		t.Logf("poll: %+v %v", res, err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[APPROVED]" {
		t.Errorf("%s: %v, want [APPROVED]", r.ID, got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Errorf("scheduled after Y's failure was read while the key follows X, paid: %d %v, want 0 (%s polled for ever)",
			n, err, rail.HandOffID(rail.WEpayout, y))
	}
}
