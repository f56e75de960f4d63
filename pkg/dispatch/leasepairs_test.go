package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Two faults: Redis loses our state, and the first attempt after the
// recovery at a single-payout batch written before the loss dies after its
// first POST (the record is left "posting", with firstPostAt). The next
// attempt comes on the next day, whose budget has no room for the batch:
// it is deferred whole, its copy only (the batch was first written before
// the loss: a payee may already be SUBMITTED or final). The copy-only
// deferral went through the status gate with no DEFERRED to produce, and
// the gate's grant indexed the missing events: a panic, which kills the
// replica, and every replica that reads the batch after it (a crash loop:
// the batch, and the partition, stuck for ever).
func TestSingleBatchDeferredWholeAfterALossAndAPostDoesNotPanic(t *testing.T) {
	t.Parallel()
	for i := range singleRails(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
			r := singleRailsAt(t, f.clock)[i](t)
			tenOClock(f, r)
			ctx := context.Background()

			// A first start (its start record makes the next recovery a
			// recovery after a loss), then the loss.
			first := singleBatch(r, "before-the-loss", 1)
			if err := r.engine(f, nil).process(ctx, &first, &kgo.Record{Topic: f.topics.Batches, Timestamp: time.Now()}, testLogger()); err != nil {
				t.Fatalf("first start: %v", err)
			}
			b := singleBatch(r, "whole-after-loss", 2)
			src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
			if err := f.redis.FlushAll(ctx); err != nil {
				t.Fatal(err)
			}

			// The attempt after the recovery dies after its first POST.
			e2 := r.engine(f, nil)
			e2.afterPost = func(string) error { return errors.New("test: the replica dies") }
			bb := b
			if err := e2.process(ctx, &bb, src, testLogger()); !errors.Is(err, errCrashed) {
				t.Fatalf("the attempt after the loss: %v, want a crash", err)
			}
			if fp, _ := f.redis.Client().HGet(ctx, e2.st.batchKey(b.BatchID), "firstPostAt").Result(); fp == "" {
				t.Fatal("the crashed attempt left no firstPostAt")
			}

			// The next day, whose budget has no room for the batch.
			f.clock.Advance(24 * time.Hour)
			e3 := r.engine(f, func(c *Config) { c.DailyLimitCents = 100 })
			bb = b
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("the next attempt panicked: %v\n%s", p, debug.Stack())
					}
				}()
				err = e3.process(ctx, &bb, src, testLogger())
			}()
			if err != nil {
				t.Fatalf("the next attempt: %v", err)
			}
			if n := outcome(e3, "deferred"); n != 1 {
				t.Fatalf("%d batches deferred, want 1", n)
			}
			copies := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
			if len(copies) != 1 {
				t.Fatalf("%d copies on the deferred topic, want 1", len(copies))
			}
			var c payout.Batch
			if err := f.codec.DecodeBatch(copies[0].Value, &c); err != nil || c.BatchID != b.BatchID || len(c.Transactions) != 2 {
				t.Fatalf("copy %+v (%v), want the whole batch", c, err)
			}
			idx := byStatus(f.statuses())
			for _, tx := range b.Transactions {
				if d := idx[tx.RequestID][payout.StatusDeferred]; len(d) != 0 {
					t.Errorf("%s: DEFERRED for a batch first written before the loss", tx.RequestID)
				}
			}
			f.checkLifecycles()
		})
	}
}

// frozenThenCounted counts the creates (POSTs) that reach the rail after
// a freeze ended (thawed) and before any lookup (a GET) followed it.
type frozenThenCounted struct {
	thawed, lookedUp atomic.Bool
	late             atomic.Int32
}

func (f *frozenThenCounted) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.Method == http.MethodGet && f.thawed.Load():
		f.lookedUp.Store(true)
	case req.Method == http.MethodPost && f.thawed.Load() && !f.lookedUp.Load():
		f.late.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults: the dispatcher's process freezes (a VM paused) between the
// lease check just before a single-payout POST and its send, and Redis is
// out of its reach meanwhile, so no renewal confirms the lease: past the
// fence, another replica may have taken the batch over, waited out its
// grace and looked the payee up (absent). Thawed, the process sent the POST
// all the same (its deadline counted from after the check): on a rail that
// does not deduplicate, the payee paid twice. The POST's deadline is also
// bounded by the lease's last confirmation, so it is not sent.
func TestPostFrozenPastTheFenceIsNotSent(t *testing.T) {
	t.Parallel()
	for i := range singleRails(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f := newFixture(t, fixtureOpt{partitions: 1})
			tr := &frozenThenCounted{}
			r := singleRails(t)[i](t).through(t, tr)
			var cut atomic.Bool
			e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1; c.Redis.AddHook(cutRedis{&cut}) })
			var frozen atomic.Int32
			limit := renewEvery(e.cfg.LeaseTTL) + e.cfg.RecoveryGrace // the fence, plus one POST
			e.whileSending = func(string) {
				if frozen.Add(1) != 1 {
					return
				}
				cut.Store(true)
				time.Sleep(limit + time.Second)
				tr.thawed.Store(true)
			}
			b := singleBatch(r, "frozen", 1)
			err := e.process(context.Background(), &b, nil, testLogger())
			cut.Store(false)
			if frozen.Load() == 0 {
				t.Fatalf("the POST was never reached (%v)", err)
			}
			if n := tr.late.Load(); n != 0 {
				t.Fatalf("%d POST(s) sent after a freeze past the lease fence, before any lookup (process: %v)", n, err)
			}
		})
	}
}
