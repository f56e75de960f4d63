package dispatch

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
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
		f, paid := paidThenMarked(t, r, "marked-paid")
		ctx := context.Background()
		rid := paid.Transactions[0].RequestID
		b := singleBatch(r, "marked-copy", 2)
		b.Transactions[0] = paid.Transactions[0]
		bb := b
		full := r.engine(f, func(c *Config) { c.DailyLimitCents = 50_000 })
		if err := full.process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the republished batch on a full day: %v", err)
		}
		f.checkOnlyNewPayeeDeferred(b)
		other := b.Transactions[1].RequestID
		f.checkLifecycles()

		// The copy, read on the next day's budget: R found, the other paid.
		cp := f.onlyDeferredCopy()
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
		idx := byStatus(f.statuses())
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
		f.checkSinglePaid(r, b, nil)
	})
}

// lookupsDown answers 503 to every lookup of a single-payout rail by our
// id while down is set (set by the first create when afterCreate);
// everything else reaches the simulator.
type lookupsDown struct {
	name        rail.Name
	afterCreate bool
	down        atomic.Bool
}

func (l *lookupsDown) RoundTrip(req *http.Request) (*http.Response, error) {
	lookup, create := singleCall(l.name, req)
	if create && l.afterCreate {
		l.down.Store(true)
	}
	if lookup && l.down.Load() {
		return jsonAnswer(req, http.StatusServiceUnavailable, `{"message":"down","code":"down"}`), nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults: R was paid (SUBMITTED), then Redis was lost and the recovery
// marked R's entry as listed by the rail; R, republished beside a new
// payee, is taken over from the mark, and the rail's lookups fail past
// RailPatience. The batch settles nothing and waits in a copy
// (deferSingle, not deferBatch): R got DEFERRED after its SUBMITTED (the
// status gate's record of R went with the same Redis). A payee taken over
// from a mark and never looked up absent waits without a DEFERRED there
// too, as deferBatch has it.
func TestListedPayeeWhoseLookupFailsGetsNoDeferred(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, paid := paidThenMarked(t, r, "marked-down")
		ctx := context.Background()
		rid := paid.Transactions[0].RequestID
		b := singleBatch(r, "marked-down-copy", 2)
		b.Transactions[0] = paid.Transactions[0]
		bb := b
		tr := &lookupsDown{name: r.name}
		tr.down.Store(true)
		timing := func(c *Config) {
			c.RailPatience, c.SingleConcurrency, c.LookupEveryPayee = 500*time.Millisecond, 1, true
		}
		if err := r.through(t, tr).engine(f, timing).process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the republished batch, its lookups down: %v", err)
		}
		idx := byStatus(f.statuses())
		if d := idx[rid][payout.StatusDeferred]; len(d) != 0 {
			t.Fatalf("%s, paid before the loss, got DEFERRED from its republished copy: %+v", rid, d)
		}
		f.checkLifecycles()

		tr.down.Store(false)
		cp := f.onlyDeferredCopy()
		if err := r.engine(f, timing).process(ctx, &cp, nil, testLogger()); err != nil {
			t.Fatalf("the copy: %v", err)
		}
		f.checkSinglePaid(r, b, nil)
	})
}

// firstLookupIDless passes a single-payout rail's calls through, but
// answers the first lookup that lists a payout with the listing stripped of
// each payout's own id.
type firstLookupIDless struct {
	name     rail.Name
	stripped atomic.Int32
}

func (l *firstLookupIDless) RoundTrip(req *http.Request) (*http.Response, error) {
	lookup, _ := singleCall(l.name, req)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !lookup || resp.StatusCode != http.StatusOK || l.stripped.Load() > 0 {
		return resp, err
	}
	if _, err := railtest.RewriteBody(resp, func(body []byte) ([]byte, bool) {
		out, ok := railtest.StripListedIDs(body, nil)
		if ok {
			l.stripped.Add(1)
		}
		return out, ok
	}); err != nil {
		return nil, err
	}
	return resp, nil
}

// Two faults: R was paid (SUBMITTED), then Redis was lost and the recovery
// marked R's entry as listed by the rail; R, republished, is taken over
// from the mark, and its first lookup lists R's payout without the
// provider's id (asked again, as a failed lookup). The second lookup of
// the same attempt finds the payout: this batch never posted R, yet R got
// a second SUBMITTED (the status gate's record of R went with the loss),
// because only a payout found by the first try counted as found.
func TestListedPayeeFoundOnALaterLookupGetsNoSubmitted(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, paid := paidThenMarked(t, r, "marked-idless")
		ctx := context.Background()
		rid := paid.Transactions[0].RequestID
		b := singleBatch(r, "marked-idless-copy", 1)
		b.Transactions[0] = paid.Transactions[0]
		bb := b
		tr := &firstLookupIDless{name: r.name}
		if err := r.through(t, tr).engine(f, func(c *Config) { c.SingleConcurrency = 1 }).process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the republished batch: %v", err)
		}
		if tr.stripped.Load() == 0 {
			t.Fatal("the fault was not met: no lookup listed the payout")
		}
		if n := r.sim.Accepted(rid); n != 1 {
			t.Fatalf("%s paid %d times, want 1", rid, n)
		}
		if s := byStatus(f.statuses())[rid][payout.StatusSubmitted]; len(s) != 1 {
			t.Fatalf("%s: %d SUBMITTED, want the original's only", rid, len(s))
		}
		f.checkLifecycles()
	})
}

// A Wompi batch takes a payee's entry over from a recovery's suspect mark
// (a single-payout rail listed an id whose lower-case form is the payee's)
// and is deferred on a full day, twice. Wompi has no per-payee lookup and
// its SUBMITTED is not suppressed for such a payee: the record's
// listedPrefix field only made the second deferral (read from the claim)
// leave that payee without its DEFERRED, while the first one (read from
// dedupe, which reports nothing for Wompi) had emitted it.
func TestWompiPayeeTakenFromASuspectMarkGetsItsDeferredEveryTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	ctx := context.Background()
	b := batch("wompi-suspect", map[string]int64{"wompi-suspect-0": 100_000, "wompi-suspect-1": 100_000},
		"wompi-suspect-0", "wompi-suspect-1")
	full := func(c *Config) { c.DailyLimitCents = 50_000 }
	e := f.engine(full)
	rid := b.Transactions[0].RequestID
	if err := f.redis.Client().Set(ctx, e.st.reqKey(rid), suspectMark, 0).Err(); err != nil {
		t.Fatal(err)
	}
	bb := b
	if err := e.process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("the batch on a full day: %v", err)
	}
	cp := f.onlyDeferredCopy()
	if err := f.engine(full).process(ctx, &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy on a full day: %v", err)
	}
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		if d := idx[tx.RequestID][payout.StatusDeferred]; len(d) != 2 {
			t.Fatalf("%s: %d DEFERRED, want one per deferral (2)", tx.RequestID, len(d))
		}
	}
	f.checkLifecycles()
}

// The first test's faults, with a third: the republished batch is read by
// a replica without the rail's credentials (a rolling change of them). Its
// peek of the index finds R's entry a recovery's listing mark, which it
// may not take over: R waits in the copy, as it should, but got DEFERRED
// RAIL_NOT_CONFIGURED after its SUBMITTED (the status gate's record of it
// lost with the same Redis). A payee under a mark waits without a
// DEFERRED there too.
func TestRaillessReplicaGivesAMarkedPayeeNoDeferred(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, paid := paidThenMarked(t, r, "marked-railless")
		ctx := context.Background()
		b := singleBatch(r, "marked-railless-copy", 2)
		b.Transactions[0] = paid.Transactions[0]
		bb := b
		if err := f.engine(nil).process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the republished batch on a replica without the rail: %v", err)
		}
		f.checkOnlyNewPayeeDeferred(b)
		f.checkLifecycles()

		// The copy, read by a replica with the rail.
		cp := f.onlyDeferredCopy()
		if err := r.engine(f, nil).process(ctx, &cp, nil, testLogger()); err != nil {
			t.Fatalf("the copy: %v", err)
		}
		f.checkSinglePaid(r, b, nil)
	})
}

// The pair the listed: field's clearing is for, with a deferral between:
// R, taken over from a recovery's suspect mark and looked up absent, is
// posted by this batch (its answer lost: outcome unknown), then the rail's
// lookups fail past RailPatience and R waits in a copy. Posted by this
// batch, R gets its DEFERRED; the copy finds the payout and emits R's
// SUBMITTED.
func TestPayeeTakenFromAMarkPostedThenDeferredGetsSubmitted(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1})
		ctx := context.Background()
		b := singleBatch(r, "marked-unknown", 1)
		rid := b.Transactions[0].RequestID
		timing := func(c *Config) {
			c.RailPatience, c.SingleConcurrency, c.HTTPTimeout, c.RecoveryGrace = 500*time.Millisecond, 1, 500*time.Millisecond, time.Second
		}
		e := r.engine(f, timing)
		if err := f.redis.Client().Set(ctx, e.st.reqKey(rid), suspectMark, 0).Err(); err != nil {
			t.Fatal(err)
		}
		tr := &lookupsDown{name: r.name, afterCreate: true}
		r.sim.DropNextCreateResponse()
		bb := b
		if err := r.through(t, tr).engine(f, timing).process(ctx, &bb, nil, testLogger()); err != nil {
			t.Fatalf("the batch: %v", err)
		}
		if n := r.sim.Accepted(rid); n != 1 {
			t.Fatalf("%s accepted %d times, want 1", rid, n)
		}
		if d := byStatus(f.statuses())[rid][payout.StatusDeferred]; len(d) != 1 {
			t.Fatalf("%s, posted by this batch and waiting: DEFERRED %+v, want one", rid, d)
		}
		cp := f.onlyDeferredCopy()
		if err := r.engine(f, timing).process(ctx, &cp, nil, testLogger()); err != nil {
			t.Fatalf("the copy: %v", err)
		}
		if n := r.sim.Accepted(rid); n != 1 {
			t.Fatalf("%s paid %d times, want 1", rid, n)
		}
		if s := byStatus(f.statuses())[rid][payout.StatusSubmitted]; len(s) != 1 {
			t.Fatalf("%s, paid by this batch: %d SUBMITTED, want 1", rid, len(s))
		}
		f.checkLifecycles()
	})
}

// checkOnlyNewPayeeDeferred checks the DEFERRED statuses after b, a
// republished copy of a payee paid before (b's first) beside a new one
// (its second), was deferred: none for the paid payee, one for the new.
func (f *fixture) checkOnlyNewPayeeDeferred(b payout.Batch) {
	f.t.Helper()
	idx := byStatus(f.statuses())
	paid, other := b.Transactions[0].RequestID, b.Transactions[1].RequestID
	if d := idx[paid][payout.StatusDeferred]; len(d) != 0 {
		f.t.Fatalf("%s, paid before, got DEFERRED from its republished copy: %+v", paid, d)
	}
	if d := idx[other][payout.StatusDeferred]; len(d) != 1 {
		f.t.Fatalf("%s: DEFERRED %+v, want one", other, d)
	}
}

// paidThenMarked pays a batch of one payee named prefix-0 on r, then
// leaves what a Redis loss and the recovery's rebuild would of its
// request: its duplicate-index entry the rail's listing mark, its status
// key gone.
func paidThenMarked(t *testing.T, r singleRail, prefix string) (*fixture, payout.Batch) {
	t.Helper()
	f := newFixture(t, fixtureOpt{partitions: 1})
	ctx := context.Background()
	paid := singleBatch(r, prefix, 1)
	bb := paid
	e := r.engine(f, nil)
	if err := e.process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original's batch: %v", err)
	}
	rid := paid.Transactions[0].RequestID
	if err := f.redis.Client().Set(ctx, e.st.reqKey(rid), listedMark(r.name), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.redis.Client().Del(ctx, f.redis.Prefix()+"track:req:{"+rid+"}").Err(); err != nil {
		t.Fatal(err)
	}
	return f, paid
}

// onlyDeferredCopy is the one deferred copy on the deferred topic.
func (f *fixture) onlyDeferredCopy() payout.Batch {
	f.t.Helper()
	recs := f.kafka.ReadAll(f.t, f.topics.BatchesDeferred)
	if len(recs) != 1 {
		f.t.Fatalf("%d deferred copies, want 1", len(recs))
	}
	var cp payout.Batch
	if err := f.codec.DecodeBatch(recs[0].Value, &cp); err != nil {
		f.t.Fatal(err)
	}
	return cp
}
