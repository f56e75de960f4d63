package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// The pair (from a review): a request's first life ended FAILED with X, a
// payment not handed off, and Y was posted after it (a lookup behind X's
// create; or the requestId sent again past DEDUPE_WINDOW): Y's PENDING
// started a new life. Y fails, then Redis loses its data before Y's
// failure is read: neither has a hand-off. X's FAILED (its webhook sent
// again, or X polled first after the rebuild) found the key empty and was
// emitted again (its eventId the first life's: consumers drop it); the
// key then followed X's FAILED and Y's failure was kept back for good: the
// request's second life stayed PENDING for ever.
func TestWEpayoutNewLifeFailureAfterRedisLossEmitted(t *testing.T) {
	webhookAndPoll(t, func(t *testing.T, byPoll bool) {
		f := newFixture(t, fixtureOpts{ownRedis: true})
		s := newSingles(t)
		e, srv := f.singleEngine(s, func(c *Config) { c.LossGrace = -1 })
		s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1}) // webhooks posted by hand below
		ctx := context.Background()
		r := f.wepPayout(srv.URL, "99")
		x, err := s.wepc.Create(ctx, r) // its answer lost: no hand-off
		if err != nil {
			t.Fatal(err)
		}
		if err := s.wep.SetStatus(r.ID, "4"); err != nil { // X fails
			t.Fatal(err)
		}
		s.wait(t)
		xh, xbody, err := s.wep.SignedWebhook(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		// X's FAILED is read once X is older than handOffWait (until then
		// the dispatcher may still post Y: kept back), and ends the first
		// life.
		f.clock.Advance(handOffWait)
		f.deliverWEPWebhook(s, srv.URL, r.ID) // X's FAILED: the first life ends
		s.wep.Advance(time.Minute)
		y := f.handOff(s.wepc, r)
		f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING: the second life
		if got := statusesOf(f.statusEvents(), r.ID); len(got) != 2 || got[1] != payout.StatusPending {
			t.Fatalf("before the loss: %v", got)
		}
		if err := s.wep.SetStatus(r.ID, "4"); err != nil { // Y fails
			t.Fatal(err)
		}
		s.wait(t)
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Fatal(err)
		}
		if byPoll { // X due first, as a final one listed first by the rebuild
			for i, id := range []string{x.ProviderID, y} {
				if err := f.sub.Schedule(ctx, rail.HandOffID(rail.WEpayout, id), f.clock.Now().Add(time.Duration(i)*5*time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			code := postTo(t, srv.URL, WEpayoutWebhookPath, xh, xbody)
			t.Logf("X's FAILED sent again after the loss: %d", code)
			f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's FAILED
		}
		f.pollRounds(e, 8, time.Minute)
		last := f.lastStatusOf(r.ID)
		if last.Status != payout.StatusFailed || deref(last.TransactionID) != y {
			t.Errorf("Y failed, and the request's second life ends %s (transaction %s), not Y's FAILED", last.Status, deref(last.TransactionID))
		}
	})
}

// The same pair on SmartFastPay, Y paid then refunded: after the loss X's
// FAILED, emitted again first, kept Y's RETURNED back for good: the
// request's second life stayed APPROVED while the payee's money came back.
func TestSmartFastPayNewLifeReturnedAfterRedisLossEmitted(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, func(c *Config) { c.LossGrace = -1 })
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // callbacks posted by hand below
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "98")
	if _, err := s.sfpc.Create(ctx, r); err != nil { // X: its answer lost
		t.Fatal(err)
	}
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	xh, xbody, err := s.sfp.SignedWebhook(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if code := postTo(t, srv.URL, SmartFastPayWebhookPath, xh, xbody); code != http.StatusOK { // the first life ends
		t.Fatalf("X's FAILED: %d", code)
	}
	s.sfp.Advance(time.Minute)
	f.handOff(s.sfpc, r) // Y
	for _, st := range []string{smartfastpay.StatusSuccess, smartfastpay.StatusRefunded} {
		if st == smartfastpay.StatusRefunded {
			if err := f.redis.FlushAll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.sfp.SetStatus(r.ID, st); err != nil {
			t.Fatal(err)
		}
		s.wait(t)
		if st == smartfastpay.StatusSuccess {
			f.deliverSFPCallback(s, srv.URL, r.ID) // Y's APPROVED: the second life
		}
	}
	t.Logf("X's FAILED sent again after the loss: %d", postTo(t, srv.URL, SmartFastPayWebhookPath, xh, xbody))
	f.deliverSFPCallback(s, srv.URL, r.ID) // Y's RETURNED
	f.pollRounds(e, 4, time.Minute)
	last := f.lastStatusOf(r.ID)
	if last.Status != payout.StatusReturned {
		t.Errorf("Y was refunded, and the request's second life ends %s (transaction %s)", last.Status, deref(last.TransactionID))
	}
}

// lastStatusOf is the request's last status event as a consumer reads the
// topic (deduped by eventId), after logging its statuses.
func (f *fixture) lastStatusOf(requestID string) payout.StatusChange {
	f.t.Helper()
	evs := f.statusEvents()
	seen := map[string]bool{}
	var last payout.StatusChange
	for _, ev := range evs {
		if ev.RequestID == requestID && !seen[ev.EventID] {
			seen[ev.EventID], last = true, ev
		}
	}
	f.t.Logf("request %s: %v", requestID, statusesOf(evs, requestID))
	return last
}
