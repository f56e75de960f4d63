package dispatch

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Two faults together: the POST is answered, a webhook's APPROVED for one
// request reaches the status topic before the dispatcher's SUBMITTED, and
// then Redis loses everything (the tracker's record of that APPROVED with
// it). Whether the job goes on or starts over after the recovery, it must
// not emit SUBMITTED now: the topic would read APPROVED then SUBMITTED, and
// the gate, empty after the loss, cannot tell by itself.
func TestNoSubmittedAfterRedisLossThatFollowedAWebhook(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	e := f.engine(nil)
	b := simpleBatch("loss-after-hook", 2)
	var fired atomic.Bool
	f.tap.afterPost = func(n int) {
		if n != 1 || !fired.CompareAndSwap(false, true) {
			return
		}
		f.trackerEmitted(b, 0, payout.StatusApproved)
		if err := f.redis.FlushAll(context.Background()); err != nil {
			t.Error(err)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if !fired.Load() {
		t.Fatal("the POST was never answered")
	}
	idx := byStatus(f.statuses())
	if n := len(idx[b.Transactions[0].RequestID][payout.StatusSubmitted]); n != 0 {
		t.Fatal("SUBMITTED emitted after the tracker's APPROVED and a Redis loss")
	}
	f.checkLifecycles()
	f.noDoublePayment()
	if got := len(f.tap.snapshot()); got != 1 {
		t.Fatalf("%d POSTs, want 1", got)
	}
}
