package dispatch

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Three faults: Wompi refuses the batch, the brokers do not answer the
// produce of its requests' REJECTED (the worker, drained, gives it up as
// perhaps written), and Redis then loses our state, the recorded refusal
// with it. The next dispatcher, after the recovery, finds nothing at Wompi
// by reference. It looked no further and posted the batch again: accepted,
// its requests read REJECTED then SUBMITTED. The batch's REJECTED, written
// and acknowledged before its requests', is on the batch status topic: the
// batch is ended the same way again, under the same eventIds, and nothing
// is posted.
//
// Four: Wompi's lookups also fail past the dispatcher's patience when the
// batch is read again, so it is deferred before the look (its requests
// then read DEFERRED after REJECTED, written down as what is left). The
// deferred copy, written after the recovery, carries the batch's
// createdAt: it is looked for, and ended the same way.
func TestRejectedBatchIsNotPostedAgainAfterARedisLoss(t *testing.T) {
	t.Run("read again", func(t *testing.T) { rejectedThenLost(t, false) })
	t.Run("deferred when read again", func(t *testing.T) { rejectedThenLost(t, true) })
}

func rejectedThenLost(t *testing.T, wompiDown bool) {
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true, noEpoch: true})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault400
		}
		return faultNone
	}
	var hold atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	holdProduce(f, f.topics.Status, &hold, &held)
	b := simpleBatch("rejected-lost", 2)

	e1 := f.engine(nil)
	stop1, _ := f.run(e1)
	f.produce(f.topics.Batches, b)
	waitHeld(t, &held, "the requests' REJECTED")
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	// A first start's epoch: nothing of a lost state to look for.
	if n := testutil.CollectAndCount(e1.m.refusalScans); n != 0 {
		t.Fatalf("%d refusal scans on a first start", n)
	}
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	hold.Store(false)

	var down atomic.Bool
	down.Store(wompiDown)
	e2 := f.engine(func(c *Config) {
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: &noLookups{base: f.tap, down: &down}}), wompi.RailConfig{})
		c.RailPatience, c.RailRetry = 300*time.Millisecond, 100*time.Millisecond
	})
	// No skew: only the batch's createdAt tells that its deferred copy,
	// written after the recovery began, is the batch of before the loss.
	e2.scanSkew = 0
	stop2, _ := f.run(e2)
	if wompiDown {
		eventually(t, "the batch deferred", func() bool { return outcome(e2, "deferred") == 1 })
		down.Store(false)
		f.clock.Set(f.clock.Now().Add(time.Hour)) // its copy is due
	}
	eventually(t, "the batch ended after the recovery", func() bool {
		return outcome(e2, "rejected") == 1 || len(f.tap.snapshot()) > 1
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1: the batch was posted again after a Redis loss, its REJECTED on the topic", n)
	}
	if n := testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")); n != 1 {
		t.Fatalf("refusal scans that found the REJECTED: %v, want 1", n)
	}
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		rejectedOnly(t, idx[tx.RequestID], tx.RequestID, "under the batch's eventId", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", tx.RequestID, string(payout.StatusRejected), b.BatchID)
		})
	}
}

// noLookups fails Wompi's lookups by reference while down is set (a
// recovery's listing goes through).
type noLookups struct {
	base http.RoundTripper
	down *atomic.Bool
}

func (n *noLookups) RoundTrip(r *http.Request) (*http.Response, error) {
	if n.down.Load() && r.Method == http.MethodGet && r.URL.Query().Get("reference") != "" {
		return nil, errors.New("test: Wompi unreachable")
	}
	return n.base.RoundTrip(r)
}

// The batch's REJECTED is written, and acknowledged, before any of its
// requests' is sent (rejectedOnTopic relies on it): while the brokers
// leave the batch's unanswered, no produce carries a request's status.
func TestBatchRejectedIsWrittenBeforeItsRequests(t *testing.T) {
	t.Run("refused", func(t *testing.T) { batchRejectedFirst(t, fault400) })
	t.Run("failed for good", func(t *testing.T) { batchRejectedFirst(t, fault415) })
}

func batchRejectedFirst(t *testing.T, refusal fault) {
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return refusal
		}
		return faultNone
	}
	td, err := f.kafka.Admin(t).ListTopics(context.Background(), f.topics.Status, f.topics.BatchStatus)
	if err != nil {
		t.Fatal(err)
	}
	names := func(req *kmsg.ProduceRequest) (status, batch bool) {
		for _, tp := range req.Topics {
			status = status || tp.Topic == f.topics.Status || tp.TopicID == td[f.topics.Status].ID
			batch = batch || tp.Topic == f.topics.BatchStatus || tp.TopicID == td[f.topics.BatchStatus].ID
		}
		return status, batch
	}
	var hold, statusSent atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	holdMatching(f, &hold, &held, func(req *kmsg.ProduceRequest) bool {
		status, batch := names(req)
		if status {
			statusSent.Store(true)
		}
		return status || batch
	})
	b := simpleBatch("rejected-order", 2)
	e := f.engine(nil)
	stop, _ := f.run(e)
	f.produce(f.topics.Batches, b)
	waitHeld(t, &held, "the batch's REJECTED")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if statusSent.Load() {
		t.Fatal("a request's status was sent while the batch's REJECTED was unanswered")
	}
}
