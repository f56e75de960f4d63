package dispatch

import (
	"context"
	"strconv"
	"testing"
)

// Two faults: Redis evicts keys while a dispatcher runs (among them,
// perhaps, a paid payee's duplicate-index entry), and the operator clears
// its statistics (CONFIG RESETSTAT) before the dispatcher's next eviction
// check, the evicting policy still set. Redis's count of evicted keys is
// back at the one the epoch was completed at: the count alone proves no
// eviction, and a copy of the paid request, in another batch, was indexed
// "for the first time" in a complete epoch and posted without a lookup:
// paid twice. The dedupe proves nothing new while Redis may evict
// (evictSafe, read by the script itself), whatever the count says.
func TestEvictionsHiddenByAStatsResetKeepTheProofOff(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	ctx := context.Background()
	e := r.engine(f, nil)
	b := singleBatch(r, "evict-reset", 1)
	rid := b.Transactions[0].RequestID
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	if c := f.epochField("complete"); c != "e0" {
		t.Fatalf("epoch complete %q, want e0", c)
	}
	base := f.epochField("evicted")
	if base == "" {
		base = "0" // no field: the dedupe reads it as 0
	}
	// Evictions while the same dispatcher runs (its next check is a
	// minute away); one of the evicted keys may be the payee's entry.
	evictSome(t, rdb)
	if err := rdb.Del(ctx, e.st.reqKey(rid)).Err(); err != nil {
		t.Fatal(err)
	}
	// The statistics cleared; the policy still evicts (with room enough
	// that the copy's own writes evict nothing more).
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	configSet(t, rdb, "maxmemory", "1gb")
	if n := strconv.FormatInt(infoInt(t, rdb, "stats", "evicted_keys"), 10); n != base {
		t.Fatalf("evicted_keys %s after the reset, want the epoch's %q", n, base)
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
