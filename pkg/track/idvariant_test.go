package track

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// A variant of a WEpayout payment's id already on the schedule (enrolled
// by a tracker from before the webhook check: "wepayout:0<id>") polled
// before the payment's own hand-off, with every webhook lost, once the
// payment is paid: WEpayout answers the variant as the payment, and
// nothing may be emitted under it. Emitted, its APPROVED carries the
// variant as transaction id, and an eventId derived from it: the payment's
// own APPROVED (the same eventId every time it is emitted, e.g. again
// after a Redis loss) is then another final event for the request, which
// consumers do not dedupe against the first. TestWEpayoutIDVariantNeverEmits
// covers a FAILED, which failureOfOther holds back anyway (the rail's
// lookup does not list the variant); an APPROVED takes no such check.
func TestWEpayoutIDVariantPolledFirstNeverEmits(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	ctx := context.Background()
	r := f.wepPayout(srv.URL, "99") // stays processing
	pid := f.handOff(s.wepc, r)
	e.enroll(ctx, rail.WEpayout, "0"+pid, payout.StatusPending)
	if err := s.wep.SetStatus(r.ID, "3"); err != nil { // paid
		t.Fatal(err)
	}
	s.wait(t)
	f.clock.Advance(time.Minute)
	now := f.clock.Now()
	for _, id := range []string{rail.HandOffID(rail.WEpayout, "0"+pid), rail.HandOffID(rail.WEpayout, pid)} {
		done, n, err := e.pollPayout(ctx, id, now)
		t.Logf("poll %s: done=%v emitted=%d err=%v", id, done, n, err)
	}
	evs := f.statusEvents()
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[APPROVED]" {
		t.Errorf("statuses %v, want [APPROVED]", got)
	}
	for _, ev := range evs {
		if ev.RequestID == r.ID && deref(ev.TransactionID) != pid {
			t.Errorf("%s emitted under transaction %s, want %s", ev.Status, deref(ev.TransactionID), pid)
		}
	}
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Error(err)
	}
}
