package track

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// A poll whose transactions could not be emitted (here the status gate's
// begin for them failed in Redis) must not record its listing's digest:
// the next poll reads the same statuses, and with the digest recorded it
// would skip them as already emitted. The batch being final and every
// transaction final, that poll takes the payout off the schedule, and with
// every webhook lost no transaction's final status ever reaches the topic.
func TestFailedPollEmitDoesNotRecordTheDigest(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	// No webhook URL: every webhook of the batch is lost.
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"))
	var on atomic.Bool
	cl := hookedClient(t, f.redis.Client(), failScript{sha: beginManyScript.Hash(), on: &on})
	e, _ := f.engine(func(cfg *Config) { cfg.Redis = cl })
	ctx := context.Background()

	f.sim.Advance(5 * time.Second) // every transaction and the batch settle
	if p, err := f.wompi.Payout(ctx, c.payoutID); err != nil || p.Status != wompi.BatchStatus(payout.BatchTotalPayment) {
		t.Fatalf("batch at Wompi: %+v %v", p, err)
	}

	on.Store(true) // the transactions' begin fails
	f.clock.Advance(e.cfg.PollMaxBackoff)
	res, err := e.PollOnce(ctx)
	t.Logf("poll with the gate failing: %+v %v", res, err)
	if res.Done != 0 {
		t.Fatalf("the payout left the schedule on a poll that emitted none of its transactions: %+v", res)
	}
	on.Store(false)
	for range 3 {
		f.clock.Advance(e.cfg.PollMaxBackoff)
		res, err := e.PollOnce(ctx)
		t.Logf("later poll: %+v %v", res, err)
	}
	evs := f.statusEvents()
	for _, tx := range c.txs {
		wt, err := f.wompi.PayoutTransaction(ctx, c.payoutID, tx.ID)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := wompi.TransactionStatus(wt.Status).PayoutStatus()
		got := statusesOf(evs, tx.Reference)
		if len(got) == 0 || got[len(got)-1] != st {
			t.Errorf("%s: statuses on the topic %v; Wompi says %s: the final status is lost", tx.Reference, got, st)
		}
	}
}
