package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A replica without a rail's credentials (a rolling change of them) defers
// a batch of that rail whole. Two faults: an earlier attempt, by a replica
// that holds the rail, settled the batch in part (a payee SUBMITTED, one
// REJECTED) and ended before the move to done; the batch is read again by
// the replica without the rail. It emitted DEFERRED RAIL_NOT_CONFIGURED for
// every payee, after their SUBMITTED and REJECTED. Only the copy is
// written now; the replica with the rail then ends each payee as before.
func TestRaillessReplicaDefersASettledBatchWithoutStatuses(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := singleBatch(r, "rail-less", 2)
	refused := b.Transactions[1].RequestID
	tr := &refuseOnce{refuse: refused}
	withRail := r.through(t, tr)
	ctx := context.Background()
	bb := b
	if err := withRail.engine(f, nil).process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	// It ended before the move to done (a crash, a lost partition).
	e1 := withRail.engine(f, nil)
	if err := f.redis.Client().HSet(ctx, e1.st.batchKey(b.BatchID), "state", statePosting, "owner", "", "lease", 0).Err(); err != nil {
		t.Fatal(err)
	}

	e2 := f.engine(nil) // no single-payout rail
	bb = b
	if err := e2.process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("read again without the rail: %v", err)
	}
	if n := outcome(e2, "deferred"); n != 1 {
		t.Fatalf("deferred %d times, want 1", n)
	}
	f.checkLifecycles()

	// Its copy, read by a replica with the rail: nothing is paid twice,
	// the refused payee is REJECTED again.
	bb = b
	bb.Attempt++
	if err := e1.process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("the copy with the rail: %v", err)
	}
	if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s paid %d times, want 1", b.Transactions[0].RequestID, n)
	}
	if n := r.sim.Accepted(refused); n != 0 {
		t.Fatalf("%s, refused, paid %d times", refused, n)
	}
	f.checkLifecycles()
	if n := len(byStatus(f.statuses())[refused][payout.StatusRejected]); n == 0 {
		t.Fatalf("%s: no REJECTED", refused)
	}
}

// After a Redis loss the batch's record is new: a replica without the rail
// cannot tell that an attempt before the loss paid its payees. A batch
// first written before the loss gets its copy only, no DEFERRED.
func TestRaillessReplicaDefersABatchOfBeforeALossWithoutStatuses(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true, noEpoch: true})
	b := singleBatch(r, "rail-less-lost", 2)
	b.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
	eA := r.engine(f, nil)
	f.produce(f.topics.Batches, b)
	r.runUntilPaidOnce(t, f, eA, b)
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A replica with the rail recovers (on a batch of its own).
	eB := r.engine(f, nil)
	after := singleBatch(r, "after-the-loss", 1)
	f.produce(f.topics.Batches, after)
	r.runUntilPaidOnce(t, f, eB, after)

	f.produce(f.topics.Batches, b) // read again
	eC := f.engine(nil)
	stop, _ := f.run(eC)
	eventually(t, "the batch deferred", func() bool { return outcome(eC, "deferred") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	f.checkLifecycles()
}

// A batch no attempt has touched gets its DEFERRED RAIL_NOT_CONFIGURED.
func TestRaillessReplicaDefersAFreshBatchWithStatuses(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := singleBatch(r, "rail-less-fresh", 2)
	bb := b
	e := f.engine(nil)
	if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatal(err)
	}
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		d := idx[tx.RequestID][payout.StatusDeferred]
		if len(d) != 1 || d[0].ReasonCode == nil || *d[0].ReasonCode != string(rail.ReasonRailNotConfigured) {
			t.Errorf("%s: DEFERRED %+v, want one with RAIL_NOT_CONFIGURED", tx.RequestID, d)
		}
	}
}

// Two faults: ingest lost its seen index (a Redis loss of its own) and a
// request already paid was republished into a new batch of the same rail,
// which a replica without that rail's credentials (a rolling change of
// them) read. deferRail emitted DEFERRED RAIL_NOT_CONFIGURED for the copy,
// whose requestId the duplicate index gives to the batch that paid it: a
// DEFERRED after that request's SUBMITTED (and after its final status,
// once the provider settled it), although a republished copy never adds
// an event to the status topic. The replica with the rail drops such a
// copy to the DLQ before anything else; the rail-less one now reads the
// index first and does the same, its copy holding only the other payees.
func TestRaillessReplicaDropsACopyAnotherBatchOwns(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{partitions: 1})
	ctx := context.Background()
	paid := singleBatch(r, "rail-less-paid", 1)
	bb := paid
	if err := r.engine(f, nil).process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original's batch: %v", err)
	}
	dup := paid.Transactions[0].RequestID

	// The copy, republished after ingest forgot it, beside a new payee.
	b := singleBatch(r, "rail-less-copy", 2)
	b.Transactions[0] = paid.Transactions[0]
	bb = b
	if err := f.engine(nil).process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("read without the rail: %v", err)
	}
	f.checkOnlyNewPayeeDeferred(b)
	if owner, ok := f.duplicateCopies()[dup]; !ok || owner != b.BatchID {
		t.Fatalf("the copy of %s was not dead-lettered from batch %s: %v", dup, b.BatchID, f.duplicateCopies())
	}
	f.checkLifecycles()

	// Its copy, read by a replica with the rail, pays the other payee only.
	cp := f.onlyDeferredCopy()
	if len(cp.Transactions) != 1 || cp.Transactions[0].RequestID != b.Transactions[1].RequestID {
		t.Fatalf("the deferred copy holds %+v, want only %s", cp.Transactions, b.Transactions[1].RequestID)
	}
	if err := r.engine(f, nil).process(ctx, &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy with the rail: %v", err)
	}
	for _, tx := range b.Transactions {
		if n := r.sim.Accepted(tx.RequestID); n != 1 {
			t.Fatalf("%s paid %d times, want 1", tx.RequestID, n)
		}
	}
	f.checkLifecycles()
}
