package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Three faults: the dispatcher's POST of batch B has its answer lost, its
// lookup by reference is served behind the create, and it posts B again:
// Wompi holds payout O (not adopted) and H (adopted, handed off), both
// paying request R. Then Redis is lost (the hand-off and R's key with it),
// and H's transaction fails while O's pays, each webhook arriving after
// handOffWait. H's FAILED has no hand-off and meets an empty key: it was
// emitted, and O's APPROVED followed it as a new life. The marketplace,
// which asks again on a FAILED, pays the payee twice. A failure with no
// hand-off waits while Wompi's lookup by the batch's reference lists
// another payout whose transaction of R is paid or may still pay.
func TestWompiFailureAfterARedisLossWhileAnotherPayoutOfTheBatchPays(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	e, srv := f.engine()
	ctx := context.Background()
	secret := f.sim.Config().EventsSecret
	first := f.payee("1234567890")
	again := first
	again.AccountNumber = "1234567007" // the simulator fails it (D07)
	batchID := "batch-" + shortName(t)
	other := f.submitUnder(false, batchID, "key-a-"+batchID, first) // its POST's answer lost
	c := f.submitUnder(true, batchID, "key-b-"+batchID, again)      // posted again, adopted
	f.sendPending(srv.URL, c, 0)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(handOffWait + time.Minute)
	f.sim.Advance(5 * time.Second) // H fails, O pays; their webhooks come late
	tx := c.txs[0]
	body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "rejected"}, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("FAILED webhook of the adopted transaction after the loss: %d", code)
	}
	otx := other.txs[0]
	body, sum = txWebhook(t, secret, otx.ID, other.payoutID, otx.AmountInCents, "APPROVED", nil, t0.Add(time.Minute))
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("APPROVED webhook of the other payout: %d", code)
	}
	for range 4 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	got := statusesOf(evs, first.Reference)
	for _, st := range got {
		if st == payout.StatusFailed {
			t.Fatalf("request %v: the adopted transaction's FAILED, read after a Redis loss, ended it while the other payout paid", got)
		}
	}
	if len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
		t.Errorf("request ends %v, want APPROVED", got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Errorf("payouts still on the schedule: %d %v", n, err)
	}
}
