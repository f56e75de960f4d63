package dispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
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
