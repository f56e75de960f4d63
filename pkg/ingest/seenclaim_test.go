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

// A claim with the record's timestamp (INGEST_SEEN_TIMESTAMPS) and one
// without it, at the same position, name the same record: instances that
// differ in the setting (while it is turned on) read each other's aborted
// windows again without taking a record for a copy of itself (which would
// dead-letter it: lost). Another position, or another timestamp, is
// another record.
func TestSeenClaimWithAndWithoutTimestampNameTheSameRecord(t *testing.T) {
	rs := testenv.Redis(t)
	idx := &seenIndex{rdb: rs.Client(), prefix: rs.Prefix(), ttl: time.Hour}
	ctx := context.Background()
	for _, c := range []struct {
		name, held, value string
		copy              bool
	}{
		{"held without, read with", "0:5", seenValue(0, 5, 1000), false},
		{"held with, read without", seenValue(0, 5, 1000), seenValue(0, 5, -1), false},
		{"held with, read with", seenValue(0, 5, 1000), seenValue(0, 5, 1000), false},
		{"another offset, with", "0:5", seenValue(0, 6, 1000), true},
		{"another offset, without", seenValue(0, 5, 1000), seenValue(0, 50, -1), true},
		{"another partition", "1:5", seenValue(0, 5, -1), true},
		{"another timestamp", seenValue(0, 5, 1000), seenValue(0, 5, 2000), true},
		{"a prefix of the offset", "0:5", "0:50", true},
	} {
		id := "fmt-" + c.name
		if err := rs.Client().Set(ctx, idx.key(id), c.held, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		copies := make([]bool, 1)
		if err := idx.claim(ctx, []string{id}, []string{c.value}, copies); err != nil {
			t.Fatal(err)
		}
		if copies[0] != c.copy {
			t.Errorf("%s: held %q, read %q: copy = %v, want %v", c.name, c.held, c.value, copies[0], c.copy)
		}
	}
}

// Pair: a window's claims are written, then Redis is flushed and the window
// aborts (a crash between the claim and the commit, with a Redis loss in
// between); originals and re-keyed copies share the window. Read again on
// an empty index, each requestId must still end with one batch and one
// BATCHED, and every copy in the DLQ (none lost as a copy of itself).
func TestRedisFlushBetweenClaimAndAbortLosesNothing(t *testing.T) {
	f := newFixture(t, 2)
	var reqs []payout.Request
	for i := range 30 {
		reqs = append(reqs, request(500+i, "acc-a", 0))
	}
	var copies []*kgo.Record
	for i := range reqs {
		v, err := f.codec.AppendRequest(nil, &reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		copies = append(copies, &kgo.Record{Key: []byte("copy-" + reqs[i].RequestID), Value: v})
	}
	f.produce(reqs, copies...)
	e := f.engine("ingest-flush", nil)
	var n atomic.Int32
	e.afterClaim = func() error {
		if n.Add(1) <= 2 {
			if err := e.cfg.Redis.FlushAll(context.Background()).Err(); err != nil {
				return err
			}
			return errors.New("test: crash after the claims, Redis flushed")
		}
		return nil
	}
	stop := f.run(e)
	f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, len(copies), 60*time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status, f.topics.Batches)
	o := f.read(len(reqs))
	stop()
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.RequestID)
	}
	o.assertExactlyOnce(t, ids, nil)
	if len(o.dlq) != len(copies) {
		t.Fatalf("DLQ holds %d, want %d", len(o.dlq), len(copies))
	}
}
