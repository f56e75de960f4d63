package track

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A pair of faults: a SmartFastPay payout's onhold callback is delivered
// (PENDING on the topic), its success callback is lost (no poll read it
// yet), then Redis loses its data (the status key; with or without the
// hand-off coming back). The refunded callback then finds a key that holds
// no status. RETURNED follows APPROVED only (README), even on an empty key
// (begin's allowed statuses): without that, RETURNED would follow PENDING,
// and a consumer that never saw the request paid would read a reversal of
// nothing. The tracker cannot know whether the APPROVED reached the topic
// before the loss, so it emits the APPROVED the RETURNED implies first (its
// eventId is the one it would have had: a consumer drops a repeat).
func TestSmartFastPayReturnedOnLostKeyEmitsImpliedApproved(t *testing.T) {
	for _, withHandOff := range []bool{true, false} {
		name := "without-hand-off"
		if withHandOff {
			name = "with-hand-off"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{ownRedis: true})
			s := newSingles(t)
			_, srv := f.singleEngine(s, func(c *Config) { c.LossGrace = -1 })
			// The simulator's own callbacks go nowhere: we deliver them by hand.
			r := f.sfpPayout("http://127.0.0.1:1/nowhere", "21") // onhold, success, then refunded
			providerID := f.handOff(s.sfpc, r)
			send := s.sfpCallbacks(t, srv.URL, r, providerID)
			// onhold read while SmartFastPay says so (a non-final status on a
			// key that holds none is read again).
			if p, err := s.sfpc.Get(context.Background(), providerID); err != nil || p.Status != payout.StatusPending {
				t.Fatalf("SmartFastPay's status %+v, %v; want PENDING", p, err)
			}
			if c := send("onhold"); c != http.StatusOK {
				t.Fatalf("onhold: %d", c)
			}
			if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING]" {
				t.Fatalf("before the loss: %v", got)
			}
			for range 6 { // paid (its callback lost), then refunded
				s.sfp.Advance(time.Second)
			}
			if p, err := s.sfpc.Get(context.Background(), providerID); err != nil || p.Status != payout.StatusReturned {
				t.Fatalf("SmartFastPay's status %+v, %v; want RETURNED", p, err)
			}
			// Redis loses its data.
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			if withHandOff {
				f.handOffRecord(rail.SmartFastPay, providerID, r)
			}
			if c := send("refunded"); c != http.StatusOK {
				t.Fatalf("refunded: %d", c)
			}
			evs := f.statusEvents()
			if err := payout.CheckLifecycles(evs); err != nil {
				t.Error(err)
			}
			if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[PENDING APPROVED RETURNED]" {
				t.Errorf("statuses %v, want [PENDING APPROVED RETURNED]", got)
			}
		})
	}
}
