package dispatch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// refuseProduce makes kfake refuse for good (INVALID_RECORD: franz-go
// fails the records, known not written) every produce request to the
// status topic while refuse is set. The status topic's partitions are led
// by one broker and every other topic the dispatcher writes by another, so
// that the records of one produce call are sent in separate requests and
// fail apart, as on a cluster where one broker cannot take writes.
func refuseProduce(t *testing.T, f *fixture, refuse *atomic.Bool) {
	t.Helper()
	fake := f.kafka.Fake()
	for topic, n := range map[string]int32{f.topics.Status: 2, f.topics.BatchesDeferred: 1, f.topics.BatchStatus: 1, f.topics.RequestsDLQ: 1} {
		node := int32(1)
		if topic == f.topics.Status {
			node = 0
		}
		for p := range n {
			if err := fake.MoveTopicPartition(topic, p, node); err != nil {
				t.Fatal(err)
			}
		}
	}
	td, err := f.kafka.Admin(t).ListTopics(context.Background(), f.topics.Status)
	if err != nil {
		t.Fatal(err)
	}
	id := td[f.topics.Status].ID
	fake.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		if !refuse.Load() {
			return nil, nil, false
		}
		status := false
		for _, rt := range req.Topics {
			status = status || rt.Topic == f.topics.Status || rt.TopicID == id
		}
		if !status {
			return nil, nil, false
		}
		return testenv.RefusedProduce(req, kerr.InvalidRecord.Code), nil, true
	})
}

// Two faults lined up: a batch deferred in part meets a status topic that
// refuses its writes, while the deferred topic takes them. The deferred
// copy (the payees that wait) was written in the same produce as the
// REJECTED of the payees it leaves out (a Wompi payee dropped for an
// unknown bank; a single payout's payee its rail refused), which failed.
// The copy's attempt ran before the original was read again (the
// original's partition held by its failing retries, or its new owner
// slow) and ended the batch done; the original, read again, found the
// batch final and was committed: the left-out request had no REJECTED, no
// DLQ record and no copy anywhere, BATCHED for ever. A deferred copy is now
// written only once the attempt's other records are.
func TestDeferredCopyIsWrittenOnlyAfterWhatItLeavesOut(t *testing.T) {
	t.Parallel()
	t.Run("wompi, a payee dropped for its bank", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
		b := simpleBatch("copyfirst", 2)
		b.Transactions[1].Beneficiary.BankCode = "9999" // unknown: dropped
		// The day's budget is used up: the kept payee waits in a copy.
		first := f.engine(func(c *Config) { c.DailyLimitCents = 50_000 })
		copyAfterTheRest(t, f, b, first, func() *Engine { return f.engine(nil) }, b.Transactions[1].RequestID, string(payout.ReasonUnknownBankID))
	})
	for _, mk := range singleRails(t) {
		r := mk(t)
		t.Run(string(r.name)+", a payee refused", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
			b := singleBatch(r, "copyfirst-"+string(r.name), 2)
			// Payee 0 refused, payee 1's rail down past the patience: it
			// waits in a copy.
			tr := &refuseOnce{refuse: b.Transactions[0].RequestID, downID: b.Transactions[1].RequestID}
			tr.down.Store(true)
			timing := func(c *Config) { c.RailPatience, c.SingleConcurrency = 500*time.Millisecond, 1 }
			first := r.through(t, tr).engine(f, timing)
			copyAfterTheRest(t, f, b, first, func() *Engine {
				tr.down.Store(false)
				return r.through(t, tr).engine(f, timing)
			}, b.Transactions[0].RequestID, "") // each rail words its refusal its own way
		})
	}
}

// copyAfterTheRest runs first's attempt at b while the status topic refuses
// its records, then, with the topic back, handles with later's engine every
// deferred copy before the original is read again, then the original, then
// any copy it wrote; and checks that left, which the first attempt left out
// of its copy, ends REJECTED (with code, unless empty).
func copyAfterTheRest(t *testing.T, f *fixture, b payout.Batch, first *Engine, later func() *Engine, left, code string) {
	t.Helper()
	var refuse atomic.Bool
	refuseProduce(t, f, &refuse)
	refuse.Store(true)
	bb := b
	if err := first.process(context.Background(), &bb, nil, testLogger()); err == nil {
		t.Fatal("the original's attempt succeeded while the status topic refused its records")
	}
	refuse.Store(false)

	e := later()
	handled := 0
	copies := func() {
		t.Helper()
		recs := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
		for _, r := range recs[handled:] {
			var cp payout.Batch
			if err := f.codec.DecodeBatch(r.Value, &cp); err != nil {
				t.Fatal(err)
			}
			if err := e.process(context.Background(), &cp, nil, testLogger()); err != nil {
				t.Fatalf("the copy's attempt: %v", err)
			}
		}
		handled = len(recs)
	}
	copies()
	bb = b
	if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original read again: %v", err)
	}
	copies()

	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		if tx.RequestID == left {
			continue
		}
		if len(idx[tx.RequestID][payout.StatusSubmitted]) != 1 {
			t.Fatalf("payee %s: %v, want SUBMITTED", tx.RequestID, idx[tx.RequestID])
		}
	}
	r := idx[left][payout.StatusRejected]
	if len(r) == 0 || (code != "" && deref(r[0].ReasonCode) != code) {
		t.Fatalf("payee %s, left out of the copy, has no REJECTED %s once its batch ended (its offset committed): %v", left, code, idx[left])
	}
	f.checkLifecycles()
}
