package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Pair: a window's claim is written and the window aborts, again and again
// (a registry or Redis outage, produce errors, rebalances), so the claim
// ages; the window read again finds its own claim and lets the request
// through. SET NX GET leaves an existing key's TTL as the first claim set
// it: the claim could run out while the window read again is still open (the
// bound DEDUPE_WINDOW >= 2 x BATCH_MAX_WINDOW + 1m counts from the window's
// start), a copy read meanwhile found the requestId free, and both were
// batched. A record that finds its own claim renews it: the copy is a copy.
func TestOwnClaimReadAgainIsRenewedForItsWindow(t *testing.T) {
	f := newFixture(t, 2)
	orig := request(11, "acc-a", 0)
	v, err := f.codec.AppendRequest(nil, &orig)
	if err != nil {
		t.Fatal(err)
	}
	f.produce([]payout.Request{orig})
	e := f.engine("ingest-aged-claim", func(c *Config) { c.DedupeWindow = time.Minute })
	key := e.index.key(orig.RequestID)
	var n atomic.Int32
	e.afterClaim = func() error {
		ctx := context.Background()
		switch n.Add(1) {
		case 1:
			// Aborted windows have aged the claim to its last 2 s.
			if err := e.cfg.Redis.PExpire(ctx, key, 2*time.Second).Err(); err != nil {
				return err
			}
			return errors.New("test: the window aborts after its claim")
		case 2:
			// Read again (after a 0.5 s backoff): the window runs on, and
			// the claim runs out unless it was renewed; then a copy.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				ttl, err := e.cfg.Redis.PTTL(ctx, key).Result()
				if err != nil {
					return err
				}
				if ttl < 0 || ttl > 10*time.Second {
					break
				}
			}
			f.kafka.Produce(t, f.topics.Requests, &kgo.Record{Key: []byte("copy-" + orig.RequestID), Value: v})
		}
		return nil
	}
	stop := f.run(e)
	f.awaitEnded(2, 60*time.Second)
	o := f.read(1)
	stop()
	if n.Load() < 3 {
		t.Fatal("the copy was not claimed: the test tested nothing")
	}
	o.assertExactlyOnce(t, []string{orig.RequestID}, nil)
	errs := dlqErrors(o.dlq)
	if len(o.dlq) != 1 {
		t.Fatalf("DLQ holds %v, want the copy as DUPLICATE_REQUEST", errs)
	}
}

// A claim of the same record renews its TTL, not another record's claim.
func TestSeenClaimReadAgainRenewsOnlyItsOwn(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := rs.Client()
	ctx := context.Background()
	idx := &seenIndex{rdb: rdb, prefix: rs.Prefix(), ttl: time.Hour}
	ids, vals := []string{"r-own", "r-other"}, []string{"0:1", "0:2"}
	copies := make([]bool, 2)
	if err := idx.claim(ctx, ids, vals, copies); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := rdb.PExpire(ctx, idx.key(id), time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// r-own read again with a timestamp (ownClaim), r-other by a copy.
	if err := idx.claim(ctx, ids, []string{"0:1:5", "1:7"}, copies); err != nil {
		t.Fatal(err)
	}
	if copies[0] || !copies[1] {
		t.Fatalf("copies = %v, want [false true]", copies)
	}
	if ttl := rdb.PTTL(ctx, idx.key("r-own")).Val(); ttl < 59*time.Minute {
		t.Fatalf("own claim read again has TTL %v, want the window renewed", ttl)
	}
	if ttl := rdb.PTTL(ctx, idx.key("r-other")).Val(); ttl > time.Second {
		t.Fatalf("another record's claim has TTL %v after a copy's claim, want it left as it was", ttl)
	}
}
