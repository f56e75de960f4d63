package track

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// Two faults together: a SmartFastPay payout is paid (PENDING, APPROVED
// emitted), Redis loses its data, and the refund callback is the first
// thing this replica handles after the loss. The RETURNED finds an empty
// key and is refused, so the APPROVED it implies is tried first; that
// APPROVED is checked against the epoch marker taken before the loss and
// comes back "read again". The RETURNED must not be dropped then: the
// callback was answered 200 (SmartFastPay does not send it again) and a
// final payout is not put back on the schedule, so it would be lost for
// good.
func TestReturnedFirstAfterRedisLossIsNotDropped(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	_, srv := f.singleEngine(s, nil)
	r := f.sfpPayout(srv.URL, "21")
	providerID := f.handOff(s.sfpc, r)
	ctx := context.Background()
	for range 10 {
		if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) == "[PENDING APPROVED]" {
			break
		}
		s.sfp.Advance(time.Second)
		s.wait(t)
	}
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("before the refund: %v", got)
	}
	// The refund callback is held back (delivered below, after the loss).
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	for range 10 {
		p, err := s.sfpc.Get(ctx, providerID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status == payout.StatusReturned {
			break
		}
		s.sfp.Advance(time.Second)
		s.wait(t)
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"requestId": "x", "data": []map[string]any{{"id": providerID, "customer_id": "cust-1",
		"transaction_id": r.ID, "amount": float64(r.AmountInCents) / 100, "status": "paid", "type": "payout", "payout_status": "refunded"}}})
	h := http.Header{smartfastpay.HeaderSignature: {smartfastpay.Sign(s.sfp.Config().WebhookSecret, t0, body)}}
	code := postTo(t, srv.URL, SmartFastPayWebhookPath, h, body)
	evs := f.statusEvents()
	checkLog(t, evs)
	got := statusesOf(evs, r.ID)
	// The RETURNED goes out on this delivery: a 5xx would only wait for
	// SmartFastPay's next try, which may come hours later.
	if code != http.StatusOK || got[len(got)-1] != payout.StatusReturned {
		t.Fatalf("refund callback after the loss answered %d with events %v: RETURNED lost for good", code, got)
	}
}

// Two faults together: a single payout settles and its webhook is lost
// (the poll is the net under that), and Redis loses its data before the
// poll that would have read it. The rebuilt schedule must still poll it,
// as it polls Wompi's recently final payouts (RebuildLookback): left off
// because it is final, its final status is never emitted.
func TestSingleFinalStatusWithLostWebhookSurvivesRedisLoss(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	mustEpoch(t, e.statuses) // the status epoch, as the poller reads it at start
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	paid, failed := f.wepPayout(srv.URL, "00"), f.sfpPayout(srv.URL, "13")
	f.handOff(s.wepc, paid)
	f.handOff(s.sfpc, failed)
	for range 3 {
		s.sfp.Advance(time.Second)
		s.wep.Advance(time.Second)
	}
	s.wait(t)
	if evs := f.statusEvents(); len(evs) != 0 {
		t.Fatalf("webhooks were to be lost: %d events", len(evs))
	}
	ctx := context.Background()
	f.clock.Advance(time.Minute) // the payouts were made a minute before the loss
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second) // the settled ones are due after the rest
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for id, want := range map[string]payout.Status{paid.ID: payout.StatusApproved, failed.ID: payout.StatusFailed} {
		if got := statusesOf(evs, id); len(got) == 0 || got[len(got)-1] != want {
			t.Errorf("%s after the loss: %v, want %s: its final status is lost for good", id, got, want)
		}
	}
}
