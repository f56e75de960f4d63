package dispatch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Three faults: Wompi refuses every batch of one dispatcher (a lookup then
// finds nothing), the brokers leave that dispatcher's produce of the
// batches' REJECTED unanswered, and Redis loses our state, the recorded
// refusals with it. A second dispatcher joins and takes some of the
// partitions; the first one's workers of those give their produces up,
// but its client runs on and sends them until the brokers answer. The
// second one recovers, finds nothing at Wompi nor on the batch status
// topic, and posts the moved batches: accepted. The first one's REJECTED
// then landed after their PENDING: a batch REJECTED on the topic, and
// paid. Its lease gone with Redis, the first one closes its client before
// a recovery can end, so that nothing it gave up lands after it.
func TestStalledRejectedDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	f, bs := stalledUngatedAcrossALoss(t, "refusal-stall", nil, true, func(f *fixture) string { return f.topics.BatchStatus })
	rejected := map[string]bool{}
	for _, s := range f.batchStatuses() {
		if s.Status == payout.BatchRejected {
			rejected[s.BatchID] = true
		}
	}
	ledger := f.sim.BatchLedger()
	for _, b := range bs {
		if rejected[b.BatchID] && ledger[b.BatchID].Accepted > 0 {
			t.Errorf("batch %s is REJECTED on the batch status topic, and Wompi accepted it %d times",
				b.BatchID, ledger[b.BatchID].Accepted)
		}
	}
}

// The same three faults with the first dispatcher's own budget refusing
// the batches before any POST (review): their requests' DEFERRED, which no
// status gate holds (nothing was posted), landed after the SUBMITTED of
// the second dispatcher's POST, a request's status going back.
func TestStalledDeferredDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	f, _ := stalledUngatedAcrossALoss(t, "defer-stall", func(c *Config) { c.DailyLimitCents = 100_000 }, false,
		func(f *fixture) string { return f.topics.Status })
	if err := payout.CheckLifecycles(f.statuses()); err != nil {
		t.Error(err)
	}
}

// stalledUngatedAcrossALoss lines the three faults up: the first
// dispatcher (first: its Config change, nil for none; refused: Wompi
// answers its POSTs 400) ends one batch per partition with records no
// status gate holds, produced to held(f), which the brokers leave
// unanswered; Redis is flushed; a second dispatcher joins, takes some of
// the partitions and pays their batches; then the brokers answer.
func stalledUngatedAcrossALoss(t *testing.T, prefix string, first func(*Config), refused bool, held func(*fixture) string) (*fixture, []payout.Batch) {
	const partitions = 4
	f := newFixture(t, fixtureOpt{kfake: true, partitions: partitions, ownRedis: true})
	bs := onePerPartition(t, prefix, partitions, 600_000)
	if refused {
		f.tap.fault = func(n int) fault {
			if n <= partitions {
				return fault400
			}
			return faultNone
		}
	}
	e1 := f.engine(first)
	stop1, done1 := f.run(e1)
	for start := time.Now(); len(f.kafka.ReadAll(t, f.topics.DispatcherStarts)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the first dispatcher has not started in 30 s")
		}
	}
	var hold atomic.Bool
	var nheld atomic.Int32
	hold.Store(true)
	holdProducer(f, &hold, &nheld, held(f))
	f.produce(f.topics.Batches, bs...)
	if refused {
		rdb := f.redis.Client()
		for _, b := range bs {
			eventually(t, "batch "+b.BatchID+" refused in Redis", func() bool {
				v, _ := rdb.HGet(context.Background(), f.redis.Prefix()+"{dispatch}:batch:"+b.BatchID,
					refusedPrefix+b.Transactions[0].RequestID).Result()
				return v != ""
			})
		}
	}
	waitHeld(t, &nheld, "the first dispatcher's ungated records")
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}

	e2 := f.engine(nil)
	stop2, _ := f.run(e2)
	eventually(t, "a moved batch ended by the second dispatcher", func() bool {
		return outcome(e2, "submitted")+outcome(e2, "rejected") > 0
	})
	hold.Store(false)
	eventually(t, "the first dispatcher's records answered or failed", func() bool {
		select {
		case <-done1:
			return true
		default:
			return testutil.ToFloat64(e1.m.awaited) == 0
		}
	})
	time.Sleep(time.Second) // the first one's last records, if any, land
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	_ = stop1()
	f.noDoublePayment()
	return f, bs
}
