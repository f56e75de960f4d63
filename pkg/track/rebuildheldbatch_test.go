package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// A Wompi batch stays PENDING three days (a hold, a slow settlement): the
// tracker polls it and emits its PENDING, batch and requests. It is paid
// then, its webhooks lost, and Redis loses everything (the hand-off, the
// schedule) before the next poll. The rebuild lists the batch final,
// created more than RebuildLookback ago and not scheduled: left off the
// schedule, and Wompi's listing gives no update time. Its requests stayed
// PENDING on the status topic for good. The tracker had emitted the batch
// as not final on the batch status topic: that record outlives Redis.
func TestRebuildTakesHeldBatchPaidAfterLookback(t *testing.T) {
	const held = 72 * time.Hour
	f := newFixture(t, fixtureOpts{ownRedis: true, sim: wompitest.Config{SettleDelay: held,
		Faults: wompitest.Faults{WebhookDropRate: 1}}})
	ctx := context.Background()
	a := f.submit(true, f.payee("1234567890"), f.payee("1234567891"))
	e, srv := f.engine()
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Polled while held: still PENDING, a poll every PollMaxBackoff.
	f.clock.Advance(held - 10*time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Paid, its webhooks lost; Redis loses everything before the next poll.
	if n := f.sim.Advance(11 * time.Minute); n != len(a.txs) {
		t.Fatalf("%d transactions settled, want %d", n, len(a.txs))
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkMonotonic(t, evs)
	byKey := transitions(evs)
	for _, tx := range a.txs {
		if len(byKey[tx.Reference+"/PENDING"]) == 0 {
			t.Fatalf("%s: no PENDING emitted while the batch was held", tx.Reference)
		}
		if len(byKey[tx.Reference+"/APPROVED"]) != 1 {
			t.Errorf("%s (payout %s): paid after a hold longer than RebuildLookback, its APPROVED was never emitted after the rebuild",
				tx.Reference, a.payoutID)
		}
	}
}
