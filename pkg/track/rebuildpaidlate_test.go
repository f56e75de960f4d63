package track

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair of TestSmartFastPayPaidAfterLongHoldIsWatchedForARefund across
// a Redis loss: a SmartFastPay payout held onhold for longer than both
// ReturnWatch and RebuildLookback, paid only then, and Redis loses its
// data just after the payment (hand-off and schedule gone). The rebuild
// takes an APPROVED still watched for a refund from its payment (its last
// change), not only from its creation: without that, the payout was left
// off the schedule, and its refund, every callback of it lost, was never
// emitted: the request stayed APPROVED while the payee's money came back.
func TestRebuildAfterRedisLossWatchesAPayoutPaidAfterALongHold(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, func(c *Config) { c.LossGrace = -1 }) // ReturnWatch 24 h, RebuildLookback 48 h
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "98") // stays onhold until SetStatus
	f.handOff(s.sfpc, r)
	advance := func(d time.Duration) {
		f.clock.Advance(d)
		s.sfp.Advance(d)
		s.wait(t)
	}
	advance(time.Second) // onhold: its callback emits PENDING
	advance(e.cfg.RebuildLookback + 2*time.Hour)
	// Paid: its success callback emits APPROVED.
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("%s: %v, want [PENDING APPROVED]", r.ID, got)
	}
	// Redis loses everything; the next round rebuilds the schedule.
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	advance(time.Minute)
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt {
		t.Fatalf("the round after the loss: %+v %v", res, err)
	}
	// Refunded an hour later; every callback of it is lost.
	advance(time.Hour)
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusRefunded); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	for range 2 {
		advance(e.cfg.PollMaxBackoff)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, r.ID); len(got) == 0 || got[len(got)-1] != "RETURNED" {
		t.Fatalf("%s: %v, want RETURNED last: the refund of a payout paid after a long hold was never emitted after the Redis loss", r.ID, got)
	}
}
