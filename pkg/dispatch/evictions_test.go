package dispatch

import (
	"context"
	"iter"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Two faults: Redis runs for a while with an evicting policy (the proof is
// off, as designed) and evicts a paid payee's duplicate-index entry; the
// operator then sets noeviction, as the error log asks. The proof came back
// at once (only the current policy was read), although the entries evicted
// meanwhile were gone: a copy of the paid request, in another batch, was
// indexed "for the first time" in a complete epoch and posted without a
// lookup. The epoch now loses its completeness while Redis may evict, and
// gets it back only from a relisting of the rails made with Redis evicting
// nothing.
func TestEvictingPolicySetBackKeepsTheProofOffUntilARelisting(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	ctx := context.Background()
	configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-lru")
	e := r.engine(f, nil)
	b := singleBatch(r, "evict-flip", 1)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if c := f.epochField("complete"); c != "" {
		t.Fatalf("the epoch is complete (%q) while Redis may evict", c)
	}
	rid := b.Transactions[0].RequestID
	// What an LRU eviction may do to a cold entry.
	if err := rdb.Del(ctx, e.st.reqKey(rid)).Err(); err != nil {
		t.Fatal(err)
	}
	configSet(t, rdb, "maxmemory-policy", "noeviction")
	copyOfPaid(t, f, r, b, rid, func() bool { return f.epochField("complete") == "e0" })
}

// Two faults: Redis evicts keys while no dispatcher runs (or between two
// of a dispatcher's checks) under a policy set back to noeviction before
// any dispatcher reads it. The count of evicted keys, kept with the epoch
// when it was completed, tells: the epoch loses its completeness, and the
// paid payee whose entry went is looked up, not posted again.
func TestEvictionsNoDispatcherSawKeepTheProofOff(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	ctx := context.Background()
	e := r.engine(f, nil)
	b := singleBatch(r, "evict-unseen", 1)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if c := f.epochField("complete"); c != "e0" {
		t.Fatalf("epoch complete %q, want e0", c)
	}
	// Evictions, of keys that expire soonest (ours live longer), then the
	// policy set back.
	evictSome(t, rdb)
	configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
	rid := b.Transactions[0].RequestID
	// One of the evicted keys may have been the payee's entry.
	if err := rdb.Del(ctx, e.st.reqKey(rid)).Err(); err != nil {
		t.Fatal(err)
	}
	copyOfPaid(t, f, r, b, rid)
}

// hookedBatchRail runs hook once, after the first item Items yields was
// consumed (the recovery's rebuild has flushed the single-payout rails'
// entries by then: its first Wompi write switches the writer's mode).
type hookedBatchRail struct {
	rail.BatchRail
	once sync.Once
	hook func()
}

func (h *hookedBatchRail) Items(ctx context.Context, id string) iter.Seq2[rail.Payout, error] {
	inner := h.BatchRail.Items(ctx, id)
	return func(yield func(rail.Payout, error) bool) {
		for p, err := range inner {
			if !yield(p, err) {
				return
			}
			if h.hook != nil {
				h.once.Do(h.hook)
			}
		}
	}
}

// Two faults: Redis evicts keys during a recovery, after the single-payout
// rails were listed and indexed, and the operator sets noeviction back
// before the recovery ends. The count of evicted keys was read at the end,
// so those evictions became the epoch's baseline, the epoch was marked
// complete, and a copy of a paid payee whose rebuilt entry was evicted was
// proven new and posted again. The count is now read when the recovery
// begins, and the epoch is complete only if it has not moved.
func TestEvictionsDuringARecoveryLeaveItsEpochIncomplete(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	rdb := f.redis.Client()
	ctx := context.Background()
	e := r.engine(f, nil)
	amounts := map[string]int64{"w-1": 100_000}
	w := batch("w", amounts, "w-1") // a Wompi batch, so the recovery lists one
	b := singleBatch(r, "evict-rec", 1)
	f.produce(f.topics.Batches, w)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "both submitted", func() bool { return outcome(e, "submitted") == 2 })
	_ = stop()
	rid := b.Transactions[0].RequestID
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	var e2 *Engine
	hr := &hookedBatchRail{}
	hr.hook = func() {
		// The rebuilt entry of rid is in Redis now.
		if v, _ := rdb.Get(ctx, e2.st.reqKey(rid)).Result(); v == "" {
			t.Errorf("hook ran before rid's rebuilt entry was written")
		}
		used := infoInt(t, rdb, "memory", "used_memory")
		configSet(t, rdb, "maxmemory-policy", "volatile-ttl", "maxmemory", strconv.FormatInt(used+4<<20, 10))
		e2.checkEviction(ctx) // a replica's periodic check sees it: proof off
		filler := strings.Repeat("x", 64<<10)
		before := infoInt(t, rdb, "stats", "evicted_keys")
		for i := 0; infoInt(t, rdb, "stats", "evicted_keys") == before; i++ {
			if i > 1000 {
				t.Error("Redis evicted nothing")
				return
			}
			_ = rdb.Set(ctx, "filler:"+strconv.Itoa(i), filler, 10*time.Minute).Err()
		}
		// One of the evicted keys may have been rid's rebuilt entry.
		_ = rdb.Del(ctx, e2.st.reqKey(rid)).Err()
		configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
		e2.checkEviction(ctx) // the next check: safe again
	}
	e2 = r.engine(f, func(c *Config) {
		hr.BatchRail = c.Wompi
		c.Wompi = hr
	})
	cp := b
	cp.BatchID = b.BatchID + "-copy"
	f.produce(f.topics.Batches, cp)
	stop, _ = f.run(e2)
	eventually(t, "the copy handled", func() bool { return outcome(e2, "submitted")+outcome(e2, "duplicate") >= 1 })
	_ = stop()
	if n := r.sim.Accepted(rid); n != 1 {
		t.Fatalf("%s paid %d times, want 1 (epoch complete %q, lookups skipped %v)", rid, n, f.epochField("complete"),
			testutil.ToFloat64(e2.m.lookupsSkipped.WithLabelValues(string(r.name))))
	}
}

// copyOfPaid sends a copy of the paid single-payout batch b, under another
// batch id, to a new dispatcher, and checks its payee rid was paid once;
// each of until is waited for before the dispatcher stops.
func copyOfPaid(t *testing.T, f *fixture, r singleRail, b payout.Batch, rid string, until ...func() bool) {
	t.Helper()
	e := r.engine(f, nil)
	cp := b
	cp.BatchID = b.BatchID + "-copy"
	f.produce(f.topics.Batches, cp)
	stop, _ := f.run(e)
	eventually(t, "the copy handled", func() bool { return outcome(e, "submitted")+outcome(e, "duplicate") >= 1 })
	for _, u := range until {
		eventually(t, "the epoch completed again by a relisting", u)
	}
	_ = stop()
	if n := r.sim.Accepted(rid); n != 1 {
		t.Fatalf("%s paid %d times, want 1", rid, n)
	}
}

func configSet(t *testing.T, rdb redis.UniversalClient, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := rdb.ConfigSet(context.Background(), kv[i], kv[i+1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// infoInt reads a number from a section of INFO.
func infoInt(t *testing.T, rdb redis.UniversalClient, section, field string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// completeScript completes an epoch only while Redis evicts nothing, and
// only if it evicted nothing since the relisting began: a key evicted
// between the relisting's last write and the completion is one no listing
// wrote back.
func TestCompleteScriptRefusesWhileOrSinceRedisEvicted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	ctx := context.Background()
	st := &store{rdb: rdb, prefix: f.redis.Prefix()}
	if err := rdb.HDel(ctx, st.epochKey(), "complete").Err(); err != nil {
		t.Fatal(err)
	}
	complete := func(base string) int {
		t.Helper()
		n, err := completeScript.Run(ctx, rdb, []string{st.epochKey(), st.graceKey()}, "e0", base).Int()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	now := strconv.FormatInt(infoInt(t, rdb, "stats", "evicted_keys"), 10)
	if complete(now+"1") != 0 {
		t.Fatal("completed although keys were evicted since the relisting began")
	}
	configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-lru")
	if complete(now) != 0 {
		t.Fatal("completed while Redis may evict keys")
	}
	configSet(t, rdb, "maxmemory-policy", "noeviction")
	if complete(now) != 1 || f.epochField("complete") != "e0" || f.epochField("evicted") != now {
		t.Fatalf("not completed with Redis evicting nothing: complete %q, evicted %q", f.epochField("complete"), f.epochField("evicted"))
	}
}

// Two faults: Redis evicts keys, among them the entry of a payee whose
// batch is still paying it (here its POST is on the wire), and the
// operator sets noeviction back; a relisting then completes the epoch
// before that POST lands. The listing cannot show a payout not yet made,
// and the entry its POST followed is gone: a copy of the request, in
// another batch, was indexed "for the first time" in a complete epoch and
// posted without a lookup. An epoch in which Redis evicted keys is no
// longer completed by a relisting.
func TestEvictedEntryOfAPayeeBeingPaidKeepsTheProofOff(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	rdb := f.redis.Client()
	ctx := context.Background()
	configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-random")
	e := r.engine(f, nil)
	b := singleBatch(r, "evict-live", 1)
	rid := b.Transactions[0].RequestID
	held, release := holdPost(e, b.BatchID)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	<-held // looked up (the epoch is not complete), and now on the wire

	evictSome(t, rdb)
	// One of the evicted keys may have been rid's entry.
	if err := rdb.Del(ctx, e.st.reqKey(rid)).Err(); err != nil {
		t.Fatal(err)
	}
	configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
	e.checkEviction(ctx) // the next check: safe again
	e.completeEpoch(ctx, "e0")
	close(release)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	copyOfPaid(t, f, r, b, rid)
}

// evictSome makes Redis evict keys for real, those that expire soonest
// (ours live longer than the fillers): a policy of volatile-ttl and a
// memory limit just above what it uses, then filled.
func evictSome(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	used := infoInt(t, rdb, "memory", "used_memory")
	configSet(t, rdb, "maxmemory-policy", "volatile-ttl", "maxmemory", strconv.FormatInt(used+4<<20, 10))
	filler := strings.Repeat("x", 64<<10)
	for i := 0; infoInt(t, rdb, "stats", "evicted_keys") == 0; i++ {
		if i > 1000 {
			t.Fatal("Redis evicted nothing")
		}
		if err := rdb.Set(context.Background(), "filler:"+strconv.Itoa(i), filler, 10*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// Two faults: Redis evicts a paid payee's duplicate-index entry while a
// dispatcher runs, between two of its eviction checks (a minute apart),
// and a copy of the request, in another batch, reaches the same
// dispatcher before its next check. The epoch still read complete, so
// the copy's dedupe indexed the payee "for the first time" and it was
// posted without a lookup: paid twice. The dedupe now reads Redis's
// policy and count of evicted keys itself (as the check does) and proves
// nothing new while Redis may evict or has evicted since the epoch was
// completed.
func TestEvictionBetweenChecksKeepsTheProofOff(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	ctx := context.Background()
	e := r.engine(f, nil)
	b := singleBatch(r, "evict-between", 1)
	rid := b.Transactions[0].RequestID
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	if c := f.epochField("complete"); c != "e0" {
		t.Fatalf("epoch complete %q, want e0", c)
	}
	// Evictions while the same dispatcher runs (its next check is a
	// minute away); one of the evicted keys may be the payee's entry.
	evictSome(t, rdb)
	configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
	if err := rdb.Del(ctx, e.st.reqKey(rid)).Err(); err != nil {
		t.Fatal(err)
	}
	cp := b
	cp.BatchID = b.BatchID + "-copy"
	f.produce(f.topics.Batches, cp)
	eventually(t, "the copy handled", func() bool { return outcome(e, "submitted")+outcome(e, "duplicate") >= 2 })
	_ = stop()
	if n := r.sim.Accepted(rid); n != 1 {
		t.Fatalf("%s paid %d times, want 1", rid, n)
	}
}
