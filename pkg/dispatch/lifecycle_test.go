package dispatch

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// Issue #16: one lifecycle per requestId on the status topic, no poison
// batch stalls a partition, and guards whose removal a test notices.

// The same requestId twice inside one batch reaches Wompi once (the
// simulator's ledger counts a reference repeated inside one batch as two
// acceptances), and the copy is dead-lettered, not given a status event.
func TestCopyInsideOneBatchReachesWompiOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := batch("inbatch", map[string]int64{"in-1": 100_000, "in-2": 200_000}, "in-1", "in-2", "in-1")
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	f.noDoublePayment()
	if le, _ := f.sim.LedgerEntry("in-1"); le.Accepted != 1 {
		t.Fatalf("in-1 accepted %d times, want 1", le.Accepted)
	}
	f.checkLifecycles()
	if dlq := f.duplicateCopies(); len(dlq) != 1 || dlq["in-1"] != b.BatchID {
		t.Fatalf("DLQ copies %v, want in-1 of this batch", dlq)
	}
	if n := testutil.ToFloat64(e.m.duplicateRequests.WithLabelValues("dispatcher")); n != 1 {
		t.Fatalf("payouts_duplicate_requests_total{stage=dispatcher} = %v, want 1", n)
	}
}

// A copy published after the original is final (APPROVED here is not
// needed: SUBMITTED is enough for the dispatcher) and after the original was
// REJECTED by Wompi's validation: neither adds an event to the status topic.
func TestCopiesAfterFinalAddNoEvent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault400
		}
		return faultNone
	}
	e := f.engine(nil)
	rejected := batch("final-rej", map[string]int64{"fin-r": 100_000}, "fin-r")
	f.produce(f.topics.Batches, rejected)
	stop, _ := f.run(e)
	eventually(t, "first batch rejected", func() bool { return outcome(e, "rejected") == 1 })
	paid := batch("final-paid", map[string]int64{"fin-p": 100_000}, "fin-p")
	f.produce(f.topics.Batches, paid)
	eventually(t, "second batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	copies := batch("final-copies", map[string]int64{"fin-r": 100_000, "fin-p": 100_000, "fin-new": 100_000}, "fin-r", "fin-p", "fin-new")
	f.produce(f.topics.Batches, copies)
	eventually(t, "copies handled", func() bool { return outcome(e, "submitted") == 2 })
	_ = stop()
	f.noDoublePayment()
	if _, ok := f.sim.LedgerEntry("fin-r"); ok {
		t.Fatal("a copy of a REJECTED request was paid")
	}
	f.checkLifecycles()
	if dlq := f.duplicateCopies(); len(dlq) != 2 || dlq["fin-r"] != copies.BatchID || dlq["fin-p"] != copies.BatchID {
		t.Fatalf("DLQ copies %v, want fin-r and fin-p of the copies' batch", dlq)
	}
}

// Two claimants of one batch: the second is told "busy" while the first
// holds a live lease.
func TestLeaseExcludesSecondClaimant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	if c, err := e.st.claim(ctx, "owner-1", "e0", "b-lease", rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("first claim %+v %v", c, err)
	}
	c, err := e.st.claim(ctx, "owner-2", "e0", "b-lease", rail.Wompi)
	if err != nil || c.code != "busy" || c.wait <= 0 {
		t.Fatalf("second claim while the lease lives: %+v %v, want busy", c, err)
	}
	if err := e.st.releaseLease(ctx, "owner-1", "b-lease"); err != nil {
		t.Fatal(err)
	}
	if c, err := e.st.claim(ctx, "owner-2", "e0", "b-lease", rail.Wompi); err != nil || c.code != "resume" {
		t.Fatalf("claim after release: %+v %v, want resume", c, err)
	}
}

// A batch that can never succeed (its budget refuses it as invalid: a
// zero amount) between two good ones: the good ones are paid, the bad one
// ends REJECTED DISPATCH_FAILED with its record in the DLQ, its partition
// moves on, and nothing is paid twice.
func TestPoisonBatchEndsAndPartitionMovesOn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	good1 := simpleBatch("poison-good1", 2)
	bad := batch("poison-bad", map[string]int64{"poison-0": 0}, "poison-0")
	good2 := simpleBatch("poison-good2", 2)
	f.produce(f.topics.Batches, good1, bad, good2)
	stop, _ := f.run(e)
	eventually(t, "both good batches submitted", func() bool { return outcome(e, "submitted") == 2 })
	eventually(t, "the bad batch ended", func() bool { return outcome(e, "failed") == 1 })
	// Every status read on the topic while the engine runs: stopped at
	// once, it may leave a write of its own open (the topic then reads
	// only up to it), which CI's load once showed.
	eventually(t, "the statuses on the topic", func() bool {
		idx := byStatus(f.statuses())
		for _, b := range []payout.Batch{good1, good2} {
			for _, tx := range b.Transactions {
				if len(idx[tx.RequestID][payout.StatusSubmitted]) == 0 {
					return false
				}
			}
		}
		return len(idx["poison-0"][payout.StatusRejected]) > 0
	})
	_ = stop()
	f.noDoublePayment()
	f.checkSubmitted(good1)
	f.checkSubmitted(good2)
	f.checkLifecycles()
	idx := byStatus(f.statuses())
	r := idx["poison-0"][payout.StatusRejected]
	if len(r) != 1 || r[0].ReasonCode == nil || *r[0].ReasonCode != string(payout.ReasonDispatchFailed) {
		t.Fatalf("bad batch's request: REJECTED %+v, want one DISPATCH_FAILED", r)
	}
	var dead int
	for _, rec := range f.kafka.ReadAll(t, f.topics.RequestsDLQ) {
		if string(rec.Key) == bad.BatchID {
			dead++
		}
	}
	if dead != 1 {
		t.Fatalf("%d DLQ records of the bad batch, want 1", dead)
	}
	if _, ok := f.sim.BatchLedger()[bad.BatchID]; ok {
		t.Fatal("the bad batch reached Wompi")
	}
}

// A webhook beat the dispatcher's record: the tracker already emitted
// APPROVED for one request of the batch (through its status store). The
// dispatcher must not emit SUBMITTED for it afterwards (the topic would read
// APPROVED then SUBMITTED); the other requests get their SUBMITTED.
func TestLateSubmittedIsNotEmittedAfterWebhook(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("late-sub", 2)
	early := b.Transactions[0].RequestID
	g := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	g.SetLossGrace(-1) // a new marker per test (pkg/track tests the grace)
	ctx := context.Background()
	tk, err := g.Begin(ctx, "", []track.GateItem{{ID: early, To: string(payout.StatusApproved), Ref: "tx-by-webhook"}})
	if err != nil || tk.Verdicts[0] != track.GateOurs {
		t.Fatalf("tracker's APPROVED: %v %v", tk, err)
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	idx := byStatus(f.statuses())
	if n := len(idx[early][payout.StatusSubmitted]); n != 0 {
		t.Fatalf("SUBMITTED emitted for %s after the tracker's APPROVED", early)
	}
	if n := len(idx[b.Transactions[1].RequestID][payout.StatusSubmitted]); n != 1 {
		t.Fatalf("the other request got %d SUBMITTED, want 1", n)
	}
	if n := testutil.ToFloat64(e.m.lateSkipped); n != 1 {
		t.Fatalf("late statuses skipped %v, want 1", n)
	}
	f.noDoublePayment()
}

// A request dropped for an unknown bank is REJECTED for good: a later
// attempt of the same batch (the bank table refreshed, the crash came before
// the batch's record moved on) keeps it rejected instead of paying it after
// its REJECTED, and another batch's copy is a duplicate.
func TestUnknownBankRejectionIsSticky(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	for _, b := range []string{"b-bank", "b-other"} {
		if c, err := e.st.claim(ctx, "w", "e0", b, rail.Wompi); err != nil || c.code != "fresh" {
			t.Fatalf("claim %s: %+v %v", b, c, err)
		}
	}
	v, news, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-bank", rail.Wompi, []string{"r-bank"}, []byte{modeReject})
	if err != nil || string(v) != "r" || news != nil {
		t.Fatalf("first attempt: %q %q %v, want rejected, not new", v, news, err)
	}
	v, news, _, _, err = e.st.dedupe(ctx, "w", "e0", "b-bank", rail.Wompi, []string{"r-bank"}, []byte{modeKeep})
	if err != nil || string(v) != "r" || news != nil {
		t.Fatalf("later attempt with the bank known: %q %q %v, want still rejected", v, news, err)
	}
	v, news, _, _, err = e.st.dedupe(ctx, "w", "e0", "b-other", rail.Wompi, []string{"r-bank"}, []byte{modeKeep})
	if err != nil || string(v) != "d" || news != nil {
		t.Fatalf("another batch's copy: %q %q %v, want duplicate", v, news, err)
	}
}

// A peek (a batch read again after its refusal) reads an earlier
// attempt's verdicts back and writes nothing: an entry that is gone, or
// that a recovery marked, answers missing and stays as it was, so the
// batch is screened in full and an unknown bank's entry is written
// rejected again, never "keep".
func TestPeekReadsTheIndexWithoutWriting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	rdb := f.redis.Client()
	if c, err := e.st.claim(ctx, "w", "e0", "b-peek", rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if _, _, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-peek", rail.Wompi, []string{"p-kept", "p-bank"}, []byte{modeKeep, modeReject}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, e.st.reqKey("p-other"), "b-another", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, e.st.reqKey("p-listed"), listedMark(rail.Wompi), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, e.st.reqKey("p-suspect"), suspectMark, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// An empty value (a recovery indexed a listed transaction without a
	// reference) is another's, in a peek as in a dedupe that writes.
	if err := rdb.Set(ctx, e.st.reqKey("p-empty"), "", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ids := []string{"p-kept", "p-bank", "p-other", "p-listed", "p-gone", "p-suspect", "p-empty"}
	v, news, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-peek", rail.Wompi, ids, bytes.Repeat([]byte{modePeek}, len(ids)))
	if err != nil || string(v) != "krdmmmd" || news != nil {
		t.Fatalf("peek: %q %q %v, want krdmmmd", v, news, err)
	}
	if v, _, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-peek", rail.Wompi, []string{"p-empty"}, []byte{modeKeep}); err != nil || string(v) != "d" {
		t.Fatalf("keep over an empty value: %q %v, want d", v, err)
	}
	for id, want := range map[string]string{"p-kept": "b-peek", "p-bank": "b-peek#r", "p-other": "b-another",
		"p-listed": listedMark(rail.Wompi), "p-gone": "", "p-suspect": suspectMark, "p-empty": ""} {
		got, err := rdb.Get(ctx, e.st.reqKey(id)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s after the peek: %q, want %q", id, got, want)
		}
	}
}

// A batch of a rail the dispatcher cannot pay through is never posted to
// Wompi: it is deferred whole with RAIL_NOT_CONFIGURED, nothing lost,
// whether the rail has no credentials here, has them but this release does
// not pay through it yet, or is no rail at all; the reason message, the
// log and payouts_dispatcher_rail_deferred_total{rail,cause} tell which.
func TestBatchOfAnotherRailIsDeferred(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, rail string
		enabled    railconfig.Enabled
		label      string // the rail label
		cause      string
		message    string // in the reason message
	}{
		{"not enabled", "smartfastpay", nil, "smartfastpay", "not_enabled", "no credentials for rail smartfastpay"},
		{"not enabled while another is", "wepayout", railconfig.Enabled{rail.SmartFastPay: true}, "wepayout", "not_enabled", "no credentials for rail wepayout"},
		{"enabled but not implemented", "wepayout", railconfig.Enabled{rail.WEpayout: true}, "wepayout", "not_implemented", "enabled in the dispatcher, but it was given no client for it"},
		{"unknown rail", "pix-express", railconfig.Enabled{rail.WEpayout: true}, "unknown", "unknown", "names no rail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpt{})
			e := f.engine(func(c *Config) { c.Rails = tc.enabled })
			b := simpleBatch("other-rail", 2)
			r := tc.rail
			b.Rail = &r
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			eventually(t, "batch deferred", func() bool { return outcome(e, "deferred") == 1 })
			_ = stop()
			if n := len(f.tap.snapshot()); n != 0 {
				t.Fatalf("%d POSTs to Wompi for a %s batch", n, r)
			}
			idx := byStatus(f.statuses())
			for _, tx := range b.Transactions {
				d := idx[tx.RequestID][payout.StatusDeferred]
				if len(d) != 1 || d[0].ReasonCode == nil || *d[0].ReasonCode != "RAIL_NOT_CONFIGURED" {
					t.Fatalf("%s: DEFERRED %+v, want RAIL_NOT_CONFIGURED", tx.RequestID, d)
				}
				if d[0].ReasonMessage == nil || !strings.Contains(*d[0].ReasonMessage, tc.message) {
					t.Fatalf("%s: reason message %v, want one saying %q", tx.RequestID, d[0].ReasonMessage, tc.message)
				}
			}
			var deferred int
			for _, rec := range f.kafka.ReadAll(t, f.topics.BatchesDeferred) {
				if string(rec.Key) != b.BatchID {
					continue
				}
				deferred++
				var nb payout.Batch
				if err := f.codec.DecodeBatch(rec.Value, &nb); err != nil {
					t.Fatal(err)
				}
				if len(nb.Transactions) != len(b.Transactions) || nb.Rail == nil || *nb.Rail != r || nb.NotBefore == nil {
					t.Fatalf("deferred copy: %d transactions, rail %v, notBefore %v; want the whole batch, its rail, a retry time",
						len(nb.Transactions), nb.Rail, nb.NotBefore)
				}
			}
			if deferred != 1 {
				t.Fatalf("%d deferred records of the batch, want 1", deferred)
			}
			if got := testutil.ToFloat64(e.m.railDeferred.WithLabelValues(tc.label, tc.cause)); got != 1 {
				t.Fatalf("rail_deferred_total{rail=%q,cause=%q} = %v, want 1", tc.label, tc.cause, got)
			}
			// Every other series exists, at 0 (the alert's increase()
			// needs the 0 to see the first deferral).
			for _, c := range [][2]string{{"smartfastpay", "not_enabled"}, {"smartfastpay", "not_implemented"},
				{"wepayout", "not_enabled"}, {"wepayout", "not_implemented"}, {"unknown", "unknown"}} {
				if c[0] == tc.label && c[1] == tc.cause {
					continue
				}
				if got := testutil.ToFloat64(e.m.railDeferred.WithLabelValues(c[0], c[1])); got != 0 {
					t.Fatalf("rail_deferred_total{rail=%q,cause=%q} = %v, want 0", c[0], c[1], got)
				}
			}
			if got := testutil.CollectAndCount(e.m.railDeferred); got != 5 {
				t.Fatalf("%d rail_deferred_total series, want the 5 created at start", got)
			}
		})
	}
}

// A batch's entries in the duplicate index live the dedupe window from its
// last attempt, not its first: a batch deferred for days (EXC_008, a full
// daily cap) and paid then kept its requestIds only a window from its
// first screening, so a copy republished within a window of the payment,
// but after the entry expired, passed the index and was paid again. Each
// attempt renews the batch's own entries, kept or rejected.
func TestDedupeEntriesLiveAWindowFromTheLastAttempt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	rdb := f.redis.Client()
	if c, err := e.st.claim(ctx, "w", "e0", "b-late", rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	ids := []string{"late-kept", "late-bank"}
	if _, _, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-late", rail.Wompi, ids, []byte{modeKeep, modeReject}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids { // most of the window gone while the batch waited
		if err := rdb.PExpire(ctx, e.st.reqKey(id), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	v, _, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-late", rail.Wompi, ids, []byte{modeKeep, modeKeep})
	if err != nil || string(v) != "kr" {
		t.Fatalf("the deferred batch's next attempt: %q %v, want kept and still rejected", v, err)
	}
	for _, id := range ids {
		if ttl := rdb.PTTL(ctx, e.st.reqKey(id)).Val(); ttl < time.Duration(e.st.reqTTLms)*time.Millisecond/2 {
			t.Errorf("%s: entry expires in %v after the batch's latest attempt, want about the dedupe window (%d ms)", id, ttl, e.st.reqTTLms)
		}
	}
}
