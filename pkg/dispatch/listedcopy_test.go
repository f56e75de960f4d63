package dispatch

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Faults lined up on a single-payout rail: request R was paid (SUBMITTED,
// later final), then the dispatcher's Redis was lost and the recovery
// marked R's index entry as listed by the rail (listedMark). The
// marketplace republished R (ingest's seen index went with the same
// Redis) into a new batch beside a new payee, on a day whose budget is
// full. The new batch takes R's entry over from the mark, as designed
// (its lookup adopts the payout), but deferred whole it emitted DEFERRED
// for R after R's SUBMITTED; and its copy, read on a claim no longer
// fresh, found R and emitted a second SUBMITTED. A payee taken over from a
// mark is recorded (listedPrefix): it waits in the copy without a
// DEFERRED, and its lookup finds it without a SUBMITTED.
func TestRepublishedPayeeTakenFromAListingMarkGetsNoDeferred(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1})
		ctx := context.Background()
		paid := singleBatch(r, "marked-paid", 1)
		bb := paid
		e := r.engine(f, nil)
		if err := e.process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the original's batch: %v", err)
		}
		rid := paid.Transactions[0].RequestID
		// What the loss and the recovery's rebuild leave: R's entry a mark,
		// its status key gone.
		if err := f.redis.Client().Set(ctx, e.st.reqKey(rid), listedMark(r.name), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := f.redis.Client().Del(ctx, f.redis.Prefix()+"track:req:{"+rid+"}").Err(); err != nil {
			t.Fatal(err)
		}
		b := singleBatch(r, "marked-copy", 2)
		b.Transactions[0] = paid.Transactions[0]
		bb = b
		full := r.engine(f, func(c *Config) { c.DailyLimitCents = 50_000 })
		if err := full.process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the republished batch on a full day: %v", err)
		}
		idx := byStatus(f.statuses())
		if d := idx[rid][payout.StatusDeferred]; len(d) != 0 {
			t.Fatalf("%s, paid before the loss, got DEFERRED from its republished copy: %+v", rid, d)
		}
		other := b.Transactions[1].RequestID
		if d := idx[other][payout.StatusDeferred]; len(d) != 1 {
			t.Fatalf("%s: DEFERRED %+v, want one", other, d)
		}
		f.checkLifecycles()

		// The copy, read on the next day's budget: R found, the other paid.
		recs := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
		if len(recs) != 1 {
			t.Fatalf("%d deferred copies, want 1", len(recs))
		}
		var cp payout.Batch
		if err := f.codec.DecodeBatch(recs[0].Value, &cp); err != nil {
			t.Fatal(err)
		}
		if len(cp.Transactions) != 2 {
			t.Fatalf("the copy holds %d payees, want both", len(cp.Transactions))
		}
		if err := r.engine(f, nil).process(ctx, &cp, nil, testLogger()); err != nil {
			t.Fatalf("the copy: %v", err)
		}
		for _, tx := range b.Transactions {
			if n := r.sim.Accepted(tx.RequestID); n != 1 {
				t.Fatalf("%s paid %d times, want 1", tx.RequestID, n)
			}
		}
		idx = byStatus(f.statuses())
		if s := idx[rid][payout.StatusSubmitted]; len(s) != 1 {
			t.Fatalf("%s: %d SUBMITTED, want the original's only", rid, len(s))
		}
		if s := idx[other][payout.StatusSubmitted]; len(s) != 1 {
			t.Fatalf("%s: %d SUBMITTED, want 1", other, len(s))
		}
		f.checkLifecycles()
	})
}

// Two faults: a recovery marked R's entry suspect (the rail listed a form
// of it in another case), and the batch that takes the mark over crashes
// after R's POST, before its SUBMITTED. R's lookup had found nothing: R was
// not paid before the loss, and this batch paid it. The batch read again
// finds R at once, but the record's listedPrefix field of R still said
// "perhaps paid before the loss", and R got no SUBMITTED at all (its
// request went from BATCHED to the tracker's statuses, and reconcile had
// no SUBMITTED naming the provider's id for the day). Once R's lookup
// finds nothing, the record forgets the mark before the POST.
func TestPayeeTakenFromAMarkAndPostedGetsSubmittedAfterACrash(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1})
		ctx := context.Background()
		b := singleBatch(r, "marked-crash", 1)
		rid := b.Transactions[0].RequestID
		e := r.engine(f, nil)
		if err := f.redis.Client().Set(ctx, e.st.reqKey(rid), suspectMark, 0).Err(); err != nil {
			t.Fatal(err)
		}
		e.afterPost = func(string) error { return errors.New("test: the replica dies after the POST") }
		bb := b
		if err := e.process(ctx, &bb, nil, testLogger()); !errors.Is(err, errCrashed) {
			t.Fatalf("the first attempt: %v, want a crash", err)
		}
		if n := r.sim.Accepted(rid); n != 1 {
			t.Fatalf("%s accepted %d times before the crash, want 1", rid, n)
		}
		bb = b
		if err := r.engine(f, nil).process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the batch read again: %v", err)
		}
		idx := byStatus(f.statuses())
		for _, tx := range b.Transactions {
			if n := r.sim.Accepted(tx.RequestID); n != 1 {
				t.Fatalf("%s paid %d times, want 1", tx.RequestID, n)
			}
			if s := idx[tx.RequestID][payout.StatusSubmitted]; len(s) != 1 {
				t.Fatalf("%s, posted by this batch after its lookup found nothing: %d SUBMITTED, want 1", tx.RequestID, len(s))
			}
		}
		f.checkLifecycles()
	})
}
