package dispatch

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// These tests hold newPayeeProof: a single-payout payee goes out without a
// lookup only when the duplicate index proves no dispatcher has posted it.
// Each guard of the proof has a test here that pays a payee twice without
// it.

// epochField reads a field of the dispatcher's epoch hash.
func (f *fixture) epochField(field string) string {
	f.t.Helper()
	v, err := f.redis.Client().HGet(context.Background(), f.redis.Prefix()+"{dispatch}:epoch", field).Result()
	if err != nil && err.Error() != "redis: nil" {
		f.t.Fatal(err)
	}
	return v
}

func lookedUp(e *Engine) float64 {
	return testutil.ToFloat64(e.m.reconciled.WithLabelValues("false")) + testutil.ToFloat64(e.m.reconciled.WithLabelValues("true"))
}

// In a complete epoch the payees of a fresh batch are posted without a
// lookup, each once; DISPATCHER_LOOKUP_EVERY_PAYEE looks each one up.
func TestNewPayeesAreNotLookedUp(t *testing.T) {
	t.Parallel()
	for _, every := range []bool{false, true} {
		for _, mk := range singleRails(t) {
			r := mk(t)
			name := string(r.name)
			if every {
				name += "/lookup-every-payee"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t, fixtureOpt{})
				e := r.engine(f, func(c *Config) { c.LookupEveryPayee = every })
				b := singleBatch(r, "new-"+string(r.name), 5)
				f.produce(f.topics.Batches, b)
				stop, _ := f.run(e)
				eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
				_ = stop()
				f.checkSinglePaid(r, b, nil)
				skipped := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name)))
				wantSkipped, wantLooked := 5.0, 0.0
				if every {
					wantSkipped, wantLooked = 0, 5
				}
				if skipped != wantSkipped || lookedUp(e) != wantLooked {
					t.Fatalf("lookups skipped %v, payees looked up %v; want %v and %v", skipped, lookedUp(e), wantSkipped, wantLooked)
				}
			})
		}
	}
}

// The dedupe's second reply: 'n' only for a kept requestId this call
// indexed for the first time, in an epoch complete under its own id.
func TestDedupeMarksOnlyNewPayees(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	e := f.engine(nil)
	ctx := context.Background()
	rdb := f.redis.Client()
	for _, b := range []string{"b-1", "b-2", "b-3"} {
		if c, err := e.st.claim(ctx, "w", "e0", b, rail.Wompi); err != nil || c.code != "fresh" {
			t.Fatalf("claim %s: %+v %v", b, c, err)
		}
	}
	if err := rdb.Set(ctx, e.st.reqKey("listed"), listedMark(rail.WEpayout), 0).Err(); err != nil {
		t.Fatal(err)
	}
	dedupe := func(batch string, ids []string, modes string) (string, string, bool) {
		t.Helper()
		v, news, complete, _, err := e.st.dedupe(ctx, "w", "e0", batch, rail.WEpayout, ids, []byte(modes))
		if err != nil {
			t.Fatal(err)
		}
		return string(v), string(news), complete
	}
	// new, new-rejected, the recovery's mark of this rail (taken over:
	// never new, and marked so, takenOver).
	if v, n, c := dedupe("b-1", []string{"a", "r", "listed"}, "krk"); v != "krk" || n != "n-l" || !c {
		t.Fatalf("first dedupe: %q %q complete=%v, want krk, n-l and complete", v, n, c)
	}
	// The same batch again: its own entries, no longer new.
	if v, n, _ := dedupe("b-1", []string{"a", "listed"}, "kk"); v != "kk" || n != "--" {
		t.Fatalf("the batch again: %q %q, want kk and --", v, n)
	}
	// Another batch: duplicates.
	if v, n, _ := dedupe("b-2", []string{"a", "b"}, "kk"); v != "dk" || n != "-n" {
		t.Fatalf("another batch: %q %q, want dk and -n", v, n)
	}
	// The epoch's complete field names another epoch (an earlier one): not
	// complete; nor is an epoch without it.
	for _, val := range []string{"e-old", ""} {
		if val == "" {
			if err := rdb.HDel(ctx, e.st.epochKey(), "complete").Err(); err != nil {
				t.Fatal(err)
			}
		} else if err := rdb.HSet(ctx, e.st.epochKey(), "complete", val).Err(); err != nil {
			t.Fatal(err)
		}
		id := "c" + val
		if v, n, c := dedupe("b-3", []string{id}, "k"); v != "k" || n != "-" || c {
			t.Fatalf("complete=%q: %q %q complete=%v, want k, - and not complete", val, v, n, c)
		}
	}
}

// paysOnceLookingUp runs e until b is submitted, and fails unless each of
// b's payees was paid exactly once and none was posted without a lookup
// (why: the case, for the failure's message).
func (r singleRail) paysOnceLookingUp(t *testing.T, f *fixture, e *Engine, b payout.Batch, why string) {
	t.Helper()
	r.runUntilPaidOnce(t, f, e, b)
	if n := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name))); n != 0 {
		t.Fatalf("%v lookups skipped %s, want 0", n, why)
	}
}

// A batch was posting (one payee paid, the answer recorded nowhere) when
// its index entries were lost while its record stayed: the redelivered
// batch indexes them anew, in a complete epoch, but its record says a POST
// may have gone out, so every payee is looked up and the paid one is
// adopted. Without that guard it is paid twice.
func TestEntriesLostUnderAPostingBatchAreLookedUp(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "lost-entries-"+string(r.name), 3)
		e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
		untilCrash(t, f, e, b)
		ctx := context.Background()
		for _, tx := range b.Transactions {
			if err := f.redis.Client().Del(ctx, e.st.reqKey(tx.RequestID)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		r.paysOnceLookingUp(t, f, r.engine(f, nil), b, "after a POST may have gone out")
	})
}

// A batch older than the dedupe window is redelivered (an offset reset)
// after its record and index entries expired: its payees are looked up and
// adopted, not paid again, although the index calls them new.
func TestOldBatchRedeliveredIsLookedUp(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "old-"+string(r.name), 2)
		b.CreatedAt = testStart.Add(-DefaultDedupeWindow - time.Hour)
		e := r.engine(f, nil)
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		ctx := context.Background()
		keys := []string{e.st.batchKey(b.BatchID)}
		for _, tx := range b.Transactions {
			keys = append(keys, e.st.reqKey(tx.RequestID))
		}
		if err := f.redis.Client().Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
		e2 := r.engine(f, func(c *Config) { c.Group = f.group + "-replay" })
		r.paysOnceLookingUp(t, f, e2, b, "for a batch older than the window")
	})
}

// A first start lists the rails before its grace is over, so its epoch is
// not complete: a POST of a dispatcher of an earlier version (which writes
// no start record) lands within the grace. Once the grace is over a batch
// has the rails listed again (completeEpoch): that payout is marked, and a
// copy of its payee that comes after is adopted, not paid again. A payee
// indexed after that goes out without a lookup.
func TestFirstStartIsCompletedByListingAgain(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
		first := singleBatch(r, "fs1-"+string(r.name), 3)
		landed := first.Transactions[2]
		first.Transactions = first.Transactions[:2]
		e := r.engine(f, nil)
		f.produce(f.topics.Batches, first)
		stop, _ := f.run(e)
		eventually(t, "the first start's recovery done", func() bool { return testutil.ToFloat64(e.m.firstStarts) == 1 })
		if c := f.epochField("complete"); c != "" {
			t.Fatalf("a first start's epoch is complete (%q) before its grace is over", c)
		}
		// The earlier version's POST lands within the grace.
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &landed)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the first batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		eventually(t, "the epoch completed", func() bool { return f.epochField("complete") == f.epochField("id") })
		if n := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name))); n != 0 {
			t.Fatalf("%v lookups skipped in a first start's epoch before it was complete", n)
		}
		second := singleBatch(r, "fs2-"+string(r.name), 3)
		second.Transactions[0] = landed // a copy of the landed payee
		f.produce(f.topics.Batches, second)
		eventually(t, "the second batch submitted", func() bool { return outcome(e, "submitted") == 2 })
		_ = stop()
		if n := r.sim.Accepted(landed.RequestID); n != 1 {
			t.Fatalf("the payee whose POST landed within the grace was paid %d times, want 1", n)
		}
		for _, tx := range append(first.Transactions, second.Transactions[1:]...) {
			if n := r.sim.Accepted(tx.RequestID); n != 1 {
				t.Fatalf("%s paid %d times, want 1", tx.RequestID, n)
			}
		}
		if n := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name))); n != 2 {
			t.Fatalf("%v lookups skipped, want 2 (the second batch's new payees)", n)
		}
	})
}

// completeEpoch does nothing while a first start's grace lasts, and
// completeScript refuses then, and for an epoch that is not the current
// one; a recovery that waited its grace leaves its epoch complete.
func TestCompleteEpochWaitsForTheGrace(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true})
	e := r.engine(f, nil)
	ctx := context.Background()
	rdb := f.redis.Client()
	if err := rdb.HDel(ctx, e.st.epochKey(), "complete").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, e.st.graceKey(), "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	e.completeEpoch(ctx, "e0")
	if c := f.epochField("complete"); c != "" {
		t.Fatalf("completed (%q) while the first start's grace lasts", c)
	}
	if n, err := completeScript.Run(ctx, rdb, []string{e.st.epochKey(), e.st.graceKey()}, "e0").Int(); err != nil || n != 0 {
		t.Fatalf("completeScript during the grace: %d %v, want 0", n, err)
	}
	if err := rdb.Del(ctx, e.st.graceKey()).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := completeScript.Run(ctx, rdb, []string{e.st.epochKey(), e.st.graceKey()}, "e-other").Int(); err != nil || n != 0 {
		t.Fatalf("completeScript for another epoch: %d %v, want 0", n, err)
	}
	e.completeEpoch(ctx, "e0")
	if c := f.epochField("complete"); c != "e0" {
		t.Fatalf("complete %q after the grace, want e0", c)
	}

	// A loss: the rails list a payout, so the recovery waits its grace,
	// lists them after it and leaves the epoch complete.
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	paid := singleBatch(r, "before-loss", 1)
	if _, err := r.client.Create(ctx, singleRequest(r.name, &paid.Transactions[0])); err != nil {
		t.Fatal(err)
	}
	id, _, err := e.ensureEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := f.epochField("complete"); c != id {
		t.Fatalf("after a recovery that waited its grace: complete %q, want %q", c, id)
	}
	if n := testutil.ToFloat64(e.m.firstStarts); n != 0 {
		t.Fatalf("first starts %v, want 0 (the rail lists a payout)", n)
	}
}

// A requestId paid on a single-payout rail is published again as it was
// (the same requestedAt) once its index entry has expired: the new batch
// is young and indexes it anew in a complete epoch, but the request is
// older than the window, so it is looked up and the payout adopted. (Found
// by a helper review: the batch's age alone let it through.) The window is
// 3 s here, so that Redis expires the entry for real.
func TestCopyAfterTheWindowIsLookedUp(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		const window = 3 * time.Second
		mut := func(c *Config) { c.DedupeWindow = window }
		orig := singleBatch(r, "win-orig-"+string(r.name), 1)
		rid := orig.Transactions[0].RequestID
		e := r.engine(f, mut)
		f.produce(f.topics.Batches, orig)
		stop, _ := f.run(e)
		eventually(t, "the original submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		if n := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name))); n != 1 {
			t.Fatalf("original: %v lookups skipped, want 1", n)
		}
		time.Sleep(window + 500*time.Millisecond)
		f.clock.Advance(window + 500*time.Millisecond)
		if n, _ := f.redis.Client().Exists(context.Background(), e.st.reqKey(rid)).Result(); n != 0 {
			t.Fatal("the index entry has not expired")
		}
		cp := singleBatch(r, "win-copy-"+string(r.name), 1)
		cp.Transactions[0] = orig.Transactions[0]
		cp.CreatedAt = f.clock.Now()
		e2 := r.engine(f, mut)
		f.produce(f.topics.Batches, cp)
		stop, _ = f.run(e2)
		eventually(t, "the copy handled", func() bool { return outcome(e2, "submitted") == 1 })
		_ = stop()
		if n := r.sim.Accepted(rid); n != 1 {
			t.Fatalf("%s paid %d times, want 1", rid, n)
		}
		if n := testutil.ToFloat64(e2.m.lookupsSkipped.WithLabelValues(string(r.name))); n != 0 {
			t.Fatalf("copy: %v lookups skipped, want 0", n)
		}
	})
}

// stripOurIDs answers WEpayout's listing without our id (external_id null
// on every item): the case the client's Find refuses to prove an absence
// for, and the rebuild counts as unindexed.
type stripOurIDs struct {
	base http.RoundTripper
	on   *atomic.Bool
}

var externalID = regexp.MustCompile(`"external_id":"[^"]*"`)

func (s stripOurIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || !s.on.Load() || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/v2/payout/payments") {
		return resp, err
	}
	return rewriteAnswer(resp, func(body []byte) ([]byte, error) {
		return externalID.ReplaceAll(body, []byte(`"external_id":null`)), nil
	})
}

// A WEpayout payee is paid and the dispatcher crashes before recording
// it; Redis is lost. The recovery waits its grace and lists the rail, but
// the listing shows that payout without our id (counted in
// payouts_dispatcher_rebuild_unindexed_total): the index cannot prove a
// payee new, so the epoch is not complete, the redelivered batch looks its
// payee up (the client's Find refuses to prove an absence then, and the
// payee waits, RAIL_UNAVAILABLE) and nothing is paid twice. (Found by a
// helper review: the epoch was marked complete and the payee paid again.)
func TestUnindexedListingLeavesTheEpochIncomplete(t *testing.T) {
	t.Parallel()
	f, e2, sim, rid := paidThenListedAfterLoss(t, "unindexed", func(on *atomic.Bool) http.RoundTripper {
		return stripOurIDs{base: http.DefaultTransport, on: on}
	})
	if n := testutil.ToFloat64(e2.m.unindexed.WithLabelValues(string(rail.WEpayout))); n == 0 {
		t.Fatal("the listing was indexed: the test did not strip our ids")
	}
	if c := f.epochField("complete"); c != "" {
		t.Fatalf("epoch complete (%q) although a listed payout could not be indexed", c)
	}
	if n := sim.Accepted(rid); n != 1 {
		t.Fatalf("%s paid %d times, want 1", rid, n)
	}
	if n := testutil.ToFloat64(e2.m.lookupsSkipped.WithLabelValues(string(rail.WEpayout))); n != 0 {
		t.Fatalf("%v lookups skipped, want 0", n)
	}
}

// paidThenListedAfterLoss pays a one-payee WEpayout batch and crashes
// before recording it, loses Redis, and reads the batch again with an
// engine whose recovery lists WEpayout through listing(on), on set from
// the loss. It returns once the batch read again is handled.
func paidThenListedAfterLoss(t *testing.T, prefix string, listing func(on *atomic.Bool) http.RoundTripper) (*fixture, *Engine, *weptest.Server, string) {
	t.Helper()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	sim := weptest.NewTestServer(t, weptest.Config{})
	var on atomic.Bool
	r := singleRails(t)[1](t)
	r.client = sim.Client(wepayout.Config{NotificationURL: sink(t),
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: listing(&on)}})
	r.sim = sim
	b := singleBatch(r, prefix, 1)
	untilCrash(t, f, r.engine(f, nil), b)
	on.Store(true)
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := r.engine(f, func(c *Config) { c.RailPatience = 2 * time.Second })
	stop, _ := f.run(e)
	eventually(t, "the batch read again handled", func() bool {
		return outcome(e, "submitted")+outcome(e, "deferred") >= 1
	})
	_ = stop()
	return f, e, sim, b.Transactions[0].RequestID
}

// completeEpoch leaves the epoch incomplete when a rail lists a payout
// without our id, as the recovery does.
func TestCompleteEpochRefusesAnUnindexedListing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	sim := weptest.NewTestServer(t, weptest.Config{})
	var strip atomic.Bool
	cl := sim.Client(wepayout.Config{NotificationURL: sink(t),
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: stripOurIDs{base: http.DefaultTransport, on: &strip}}})
	r := singleRails(t)[1](t)
	r.client, r.sim = cl, sim
	e := r.engine(f, nil)
	ctx := context.Background()
	if err := f.redis.Client().HDel(ctx, e.st.epochKey(), "complete").Err(); err != nil {
		t.Fatal(err)
	}
	paid := singleBatch(r, "unindexed-relist", 1)
	if _, err := r.client.Create(ctx, singleRequest(r.name, &paid.Transactions[0])); err != nil {
		t.Fatal(err)
	}
	strip.Store(true)
	e.completeEpoch(ctx, "e0")
	if c := f.epochField("complete"); c != "" {
		t.Fatalf("complete %q after a listing without our ids, want none", c)
	}
	strip.Store(false)
	e.completeAfter.Store(0) // the minute's wait after a failure
	e.completeEpoch(ctx, "e0")
	if c := f.epochField("complete"); c != "e0" {
		t.Fatalf("complete %q after a full listing, want e0", c)
	}
}

// A Redis that may evict keys (maxmemory with a policy other than
// noeviction) could drop a paid payee's duplicate-index entry: the next SET
// NX would index it "for the first time" and prove it new. While Redis may
// evict, every payee is looked up; with noeviction the proof holds again.
func TestEvictingRedisTurnsTheNewPayeeProofOff(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"allkeys-lru", "volatile-ttl", "noeviction"} {
		t.Run(policy, func(t *testing.T) {
			r := singleRails(t)[1](t)
			f := newFixture(t, fixtureOpt{ownRedis: true})
			rdb := f.redis.Client()
			ctx := context.Background()
			if err := rdb.ConfigSet(ctx, "maxmemory", "1gb").Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
				t.Fatal(err)
			}
			e := r.engine(f, nil)
			b := singleBatch(r, "evict-"+policy, 3)
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			f.checkSinglePaid(r, b, nil)
			skipped, gauge := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name))), testutil.ToFloat64(e.m.mayEvict)
			want, wantGauge := 0.0, 1.0
			if policy == "noeviction" {
				want, wantGauge = 3, 0
			}
			if skipped != want || gauge != wantGauge {
				t.Fatalf("maxmemory-policy %s: lookups skipped %v (want %v), redis_may_evict %v (want %v)", policy, skipped, want, gauge, wantGauge)
			}
		})
	}
}
