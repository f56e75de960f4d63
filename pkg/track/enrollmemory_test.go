package track

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Review (pair of faults): the per-process memory of enrolled payouts
// (enrollBatch's recentIDs) outlives the schedule entry it stands for.
// A webhook of a new batch (no hand-off yet, or lost) enrolls its payout
// and the process remembers it for enrollMemory. Redis then loses its data,
// and the rebuild of the schedule reads a listing behind the create: the
// payout is on no schedule. The batch's next webhook ARRIVES within the
// minute, is mapped through Wompi, and enrollBatch answers "already
// enrolled" from memory: nothing is written. With the batch's later
// webhooks lost, nothing polls it again and its requests stall at PENDING
// for ever (a final status never emitted). The webhook that arrived after
// the loss was the one chance to put the payout back, and it was wasted.
func TestEnrollMemoryDoesNotOutliveARedisLoss(t *testing.T) {
	for _, next := range []string{"transaction", "payout"} {
		t.Run(next, func(t *testing.T) { enrollMemoryAfterLoss(t, next == "payout") })
	}
}

func enrollMemoryAfterLoss(t *testing.T, nextIsPayout bool) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	lb, behind := f.behindListing(t)
	e, srv := f.engine(behind, func(c *Config) {
		c.LossGrace = -1 // the grace is not what this test is about
	})
	secret := f.sim.Config().EventsSecret
	ctx := context.Background()
	// No hand-off: the new batch's webhooks came before it (or it was lost).
	c := f.submit(false, f.payee("1234567890"), f.payee("1234567891"))
	send := func(i int) { f.sendPending(srv.URL, c, i) }
	send(0)
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled after the first webhook: %d %v", n, err)
	}
	// Redis loses its data; the rebuild reads a listing behind the create.
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	lb.lag.Store(true)
	if res, err := e.PollOnce(ctx); err != nil || !res.Rebuilt || res.Claimed != 0 {
		t.Fatalf("rebuild from a listing behind the create: %+v %v", res, err)
	}
	lb.lag.Store(false)
	// The batch's next webhook arrives, a few seconds later.
	f.clock.Advance(5 * time.Second)
	if nextIsPayout {
		body, sum := payoutWebhook(t, secret, c.payoutID, c.batchID, c.txs[0].AmountInCents+c.txs[1].AmountInCents, "PENDING", t0)
		if code := post(t, srv.URL, body, sum); code != http.StatusOK {
			t.Fatalf("payout webhook: %d", code)
		}
	} else {
		send(1)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("scheduled: %d %v after a webhook of a payout Redis lost: the process's memory said it was enrolled", n, err)
	}
	// Everything settles; every later webhook of it is lost.
	f.settleUnwatched(e, c)
}

// Review (pair of faults, the case enrollBatch's doc left open): after a
// Redis loss whose rebuild missed a new batch, replica B handles the
// batch's next webhook, emits its status on the emptied key, then fails
// the schedule write and answers 503. Wompi sends it again, to replica A,
// which enrolled the payout before the loss: there the status is a
// duplicate, its begin reads no epoch marker, and A's cached marker still
// matches its memory, so it answered 200 without writing the schedule.
// With the batch's later webhooks lost, its requests stalled at PENDING.
func TestDuplicateWebhookAfterALossStillEnrolls(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	lb, behind := f.behindListing(t)
	a, srvA := f.engine(behind, func(c *Config) {
		c.LossGrace = -1 // the grace is not what this test is about
	})
	var armed atomic.Bool
	rdb := hookedClient(t, f.redis.Client(), failEnroll{armed: &armed})
	b, srvB := f.engine(behind, func(c *Config) {
		c.Redis = rdb
		c.LossGrace = -1
	})
	ctx := context.Background()
	c := f.submit(false, f.payee("1234567890"), f.payee("1234567891"))
	f.sendPending(srvA.URL, c, 0) // A enrolls the payout, and remembers it
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	lb.lag.Store(true)
	if res, err := b.PollOnce(ctx); err != nil || !res.Rebuilt || res.Claimed != 0 {
		t.Fatalf("rebuild from a listing behind the create: %+v %v", res, err)
	}
	lb.lag.Store(false)
	f.clock.Advance(5 * time.Second)
	tx := c.txs[1]
	body, sum := txWebhook(t, f.sim.Config().EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "PENDING", nil, t0)
	postEnrollFails(t, srvB.URL, body, sum, &armed) // at B
	// Wompi's retry reaches A.
	if code := post(t, srvA.URL, body, sum); code != http.StatusOK {
		t.Fatalf("the retry at A: %d", code)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("scheduled: %d %v after a duplicate webhook of a payout Redis lost: A's memory said it was enrolled", n, err)
	}
	f.settleUnwatched(a, c)
}
