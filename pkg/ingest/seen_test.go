package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// TestSeenClaimKeysValuesAndWindow holds the claim's hand-built SET NX GET:
// each requestId's key (a hashed one for an id that is not a valid
// reference) holds the claiming record with the dedupe window as its TTL;
// a record without a requestId claims nothing; a second claim by another
// record is a copy and leaves the holder as it was; the same record again
// is not a copy; and claims of growing and shrinking size reuse the index's
// slices without mixing one request's key or value with another's. On a
// Redis Cluster too: the keys of one pipeline spread over every slot.
func TestSeenClaimKeysValuesAndWindow(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		rs := testenv.Redis(t)
		testSeenClaim(t, rs.Client(), rs.Prefix())
	})
	t.Run("cluster", func(t *testing.T) {
		rc := testenv.RedisCluster(t)
		testSeenClaim(t, rc.Client(), rc.Prefix())
	})
}

func testSeenClaim(t *testing.T, rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	idx := &seenIndex{rdb: rdb, prefix: prefix, ttl: 90 * time.Minute}
	long := strings.Repeat("x", 300) // not a valid reference: keyed by its hash
	claim := func(ids, values []string) []bool {
		t.Helper()
		copies := make([]bool, len(ids))
		for i := range copies {
			copies[i] = true // claim must clear every entry it does not mark
		}
		if err := idx.claim(ctx, ids, values, copies); err != nil {
			t.Fatal(err)
		}
		return copies
	}
	holds := func(id, want string) {
		t.Helper()
		key := idx.key(id)
		got, err := rdb.Get(ctx, key).Result()
		if err != nil || got != want {
			t.Fatalf("%s holds %q (%v), want %q", key, got, err, want)
		}
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 89*time.Minute || ttl > 90*time.Minute {
			t.Fatalf("%s has TTL %v (%v), want the 90m window", key, ttl, err)
		}
	}

	ids := []string{"r-1", "", "r-2", long, "r-3"}
	vals := []string{"0:1", "0:2", "0:3", "0:4", "0:5"}
	if got := claim(ids, vals); strings.Contains(fmtBools(got), "1") {
		t.Fatalf("fresh claims marked as copies: %s", fmtBools(got))
	}
	holds("r-1", "0:1")
	holds("r-2", "0:3")
	holds(long, "0:4")
	holds("r-3", "0:5")
	if n, err := rdb.Exists(ctx, idx.key("")).Result(); err != nil || n != 0 {
		t.Fatalf("a record without a requestId claimed %s (%v)", idx.key(""), err)
	}
	if !strings.HasPrefix(idx.key(long), prefix+"ingest:{#") {
		t.Fatalf("an invalid reference is keyed %q, not by its hash", idx.key(long))
	}

	// Fewer ids: r-2 by another record (a copy), r-1 by its own (not one).
	if got := fmtBools(claim([]string{"r-2", "r-1"}, []string{"1:9", "0:1"})); got != "10" {
		t.Fatalf("copies = %s, want 10", got)
	}
	holds("r-2", "0:3")

	// More ids than any claim before: new ones are free, the old ones copies.
	var more, moreVals []string
	for i := range 12 {
		more = append(more, "m-"+string(rune('a'+i)))
		moreVals = append(moreVals, "2:"+string(rune('a'+i)))
	}
	more = append(more, "r-3", long)
	moreVals = append(moreVals, "2:x", "2:y")
	if got := fmtBools(claim(more, moreVals)); got != "00000000000011" {
		t.Fatalf("copies = %s, want 00000000000011", got)
	}
	for i := range 12 {
		holds(more[i], moreVals[i])
	}
	holds("r-3", "0:5")
	holds(long, "0:4")
}

func fmtBools(bs []bool) string {
	var b strings.Builder
	for _, v := range bs {
		if v {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}
