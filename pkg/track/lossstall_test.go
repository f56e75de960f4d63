package track

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Review (pair of faults): a webhook's FAILED is being produced on a
// stalled broker past ProduceTimeout (answered 503), and Redis loses its
// data meanwhile; another replica then gets Wompi's retries of the older
// PENDING and of the FAILED, before and after the loss grace. Nothing may
// follow the pending FAILED on the topic, nor go back, nor be lost: the
// holder writes its attempt back, and the key is busy until the FAILED
// lands.
func TestStalledFailedAcrossARedisLoss(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	st, stalled := newStall()
	const lease, grace = 2 * time.Second, time.Second
	slow, srvA := f.engine(func(c *Config) {
		c.Kafka = append(c.Kafka, stalled)
		c.ProduceTimeout, c.Lease, c.LossGrace = time.Second, lease, grace
	})
	other, srvB := f.engine(func(c *Config) { c.ProduceTimeout, c.Lease, c.LossGrace = time.Second, lease, grace })
	ctx := context.Background()
	for _, e := range []*Engine{slow, other} { // both saw the marker before the loss
		mustEpoch(t, e.statuses)
	}
	c := f.submit(true, f.payee("1234567007"))
	tx := c.txs[0]
	secret := f.sim.Config().EventsSecret
	pending, psum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "PENDING", nil, t0)
	failed, fsum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "Account number does not exist"}, t0)
	if code := post(t, srvA.URL, pending, psum); code != http.StatusOK {
		t.Fatalf("PENDING: %d", code)
	}
	f.sim.Advance(5 * time.Second) // Wompi fails it (D07)
	if wt, err := f.wompi.PayoutTransaction(ctx, c.payoutID, tx.ID); err != nil || wt.Status != "FAILED" {
		t.Fatalf("at Wompi: %+v %v", wt, err)
	}
	st.mu.Lock()
	st.on = true
	st.mu.Unlock()
	if code := post(t, srvA.URL, failed, fsum); code != http.StatusServiceUnavailable {
		t.Fatalf("stalled FAILED: %d, want 503", code)
	}
	select {
	case <-st.held:
	default:
		t.Fatal("the FAILED produce was not held in flight")
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	// Within the grace, then after it: the key is busy (grace, then the
	// attempt written back), whatever B reads.
	if code := post(t, srvB.URL, pending, psum); code != http.StatusServiceUnavailable {
		t.Errorf("PENDING retry just after the loss: %d, want 503", code)
	}
	time.Sleep(grace)
	if code := post(t, srvB.URL, failed, fsum); code != http.StatusServiceUnavailable {
		t.Errorf("FAILED retry past the grace, the first still in flight: %d, want 503", code)
	}
	st.letGo()
	awaitStatus(t, other, tx.Reference, payout.StatusFailed)
	for _, h := range []struct {
		body []byte
		sum  string
	}{{pending, psum}, {failed, fsum}} {
		if code := post(t, srvB.URL, h.body, h.sum); code != http.StatusOK {
			t.Errorf("retry after the FAILED landed: %d", code)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, tx.Reference); fmt.Sprint(got) != "[PENDING FAILED]" {
		t.Errorf("topic reads %v, want [PENDING FAILED]", got)
	}
}
