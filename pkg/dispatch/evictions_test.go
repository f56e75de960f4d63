package dispatch

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
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
	copyOfPaid(t, f, r, b, rid)
	eventually(t, "the epoch completed again by a relisting", func() bool { return f.epochField("complete") == "e0" })
}

// Two faults: Redis evicts keys while no dispatcher runs (or between two
// of a dispatcher's checks) under a policy set back to noeviction before
// any dispatcher reads it. The count of evicted keys, kept with the epoch
// when it was completed, tells: the epoch loses its completeness, and the
// paid payee whose entry went is looked up, not posted again.
func TestEvictionsNoDispatcherSawKeepTheProofOff(t *testing.T) {
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
	used := infoInt(t, rdb, "memory", "used_memory")
	configSet(t, rdb, "maxmemory-policy", "volatile-ttl", "maxmemory", strconv.FormatInt(used+4<<20, 10))
	filler := strings.Repeat("x", 64<<10)
	for i := 0; infoInt(t, rdb, "stats", "evicted_keys") == 0; i++ {
		if i > 1000 {
			t.Fatal("Redis evicted nothing")
		}
		if err := rdb.Set(ctx, "filler:"+strconv.Itoa(i), filler, 10*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
	rid := b.Transactions[0].RequestID
	// One of the evicted keys may have been the payee's entry.
	if err := rdb.Del(ctx, e.st.reqKey(rid)).Err(); err != nil {
		t.Fatal(err)
	}
	copyOfPaid(t, f, r, b, rid)
}

// copyOfPaid sends a copy of the paid single-payout batch b, under another
// batch id, to a new dispatcher, and checks its payee rid was paid once.
func copyOfPaid(t *testing.T, f *fixture, r singleRail, b payout.Batch, rid string) {
	t.Helper()
	e := r.engine(f, nil)
	cp := b
	cp.BatchID = b.BatchID + "-copy"
	f.produce(f.topics.Batches, cp)
	stop, _ := f.run(e)
	eventually(t, "the copy handled", func() bool { return outcome(e, "submitted")+outcome(e, "duplicate") >= 1 })
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
