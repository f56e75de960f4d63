package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// TestRebuildTakesHeldBatchPaidAfterLookback with the batch's own webhook
// delivered: a Wompi batch held three days is paid, and of its webhooks
// only the payout's TOTAL_PAYMENT arrives (emitted on the batch status
// topic); every transaction's is lost, and Redis loses everything before
// the next poll. The rebuild lists the batch final and created more than
// RebuildLookback ago (rebuildTakes leaves it off), and its last record on
// the batch status topic is final: only because that final status occurred
// within RebuildLookback is the batch polled again, and its requests'
// APPROVED emitted. Skipped as final, they stayed PENDING for good.
func TestRebuildTakesHeldBatchWhoseFinalStatusWasEmittedWithinLookback(t *testing.T) {
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
	// Paid: the payout's webhook arrives, its transactions' are lost.
	if n := f.sim.Advance(11 * time.Minute); n != len(a.txs) {
		t.Fatalf("%d transactions settled, want %d", n, len(a.txs))
	}
	var total int64
	for _, tx := range a.txs {
		total += tx.AmountInCents
	}
	body, sum := payoutWebhook(t, f.sim.Config().EventsSecret, a.payoutID, a.batchID, total, "TOTAL_PAYMENT", f.clock.Now())
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("TOTAL_PAYMENT webhook of the payout: %d", code)
	}
	final := false
	for _, bc := range f.batchEvents() {
		if bc.BatchID == a.batchID && bc.Status.Final() {
			final = true
		}
	}
	if !final {
		t.Fatalf("batch %s: no final status on the batch status topic", a.batchID)
	}
	// Redis loses everything before the next poll.
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
			t.Errorf("%s (payout %s): paid after a long hold, its batch's final status emitted just before a Redis loss, its APPROVED was never emitted after the rebuild",
				tx.Reference, a.payoutID)
		}
	}
}
