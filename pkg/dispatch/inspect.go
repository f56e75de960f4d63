package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// This file is a read-only view of the dispatcher's Redis state for
// operators (cmd/payoutsctl). It writes nothing and takes no lease; its key
// layout is the store's own, so it follows any change to it.

// BatchRecord is what Redis holds about one batch the dispatcher worked on.
type BatchRecord struct {
	BatchID  string
	State    string // claimed, posting, posted, done, rejected or deferred
	PayoutID string // set once the provider accepted the batch
	// FirstPostAt is when a POST of the batch first went out (zero when
	// none did).
	FirstPostAt time.Time
	// LeaseUntil is the end of the last lease taken on the record (Redis
	// server time; zero when a replica released it). Each step of a batch
	// renews it to its time + DISPATCHER_LEASE_TTL.
	LeaseUntil time.Time
	// Rail is the batch's rail, kept by its first claim ("" in records
	// written before the record kept it).
	Rail string
}

// Final reports whether the dispatcher has nothing left to do for the
// batch (done or rejected).
func (r BatchRecord) Final() bool { return r.State == stateDone || r.State == stateRejected }

// Owner is a requestId's entry in the duplicate index.
type Owner struct {
	// BatchID is the batch that owns the request; "" when ListedOn says
	// where it was found instead.
	BatchID string
	// Rejected: that batch rejected the request (REJECTED is final),
	// unless Unbanked.
	Rejected bool
	// Unbanked: that batch dropped the request for an unknown bank after an
	// earlier attempt of it had kept it (the batch record's unbanked
	// field): a POST of the batch may hold it, and it is REJECTED only once
	// a lookup proves the batch absent; until then it may still be
	// SUBMITTED.
	Unbanked bool
	// ListedOn is the single-payout rail whose listing held the request
	// when a recovery rebuilt the index after a Redis loss (such a payout
	// does not name our batch); "" otherwise.
	ListedOn rail.Name
}

// RequestOwner reads the duplicate index entry of requestID. found is
// false when the index holds nothing (never dispatched, expired after
// DEDUPE_WINDOW, or lost with Redis).
func RequestOwner(ctx context.Context, rdb redis.UniversalClient, prefix, requestID string) (o Owner, found bool, err error) {
	s := &store{prefix: prefix}
	v, err := rdb.Get(ctx, s.reqKey(requestID)).Result()
	if errors.Is(err, redis.Nil) {
		return Owner{}, false, nil
	}
	if err != nil {
		return Owner{}, false, fmt.Errorf("dispatch: read duplicate index: %w", err)
	}
	if n, ok := strings.CutPrefix(v, listedMark("")); ok {
		return Owner{ListedOn: rail.Name(n)}, true, nil
	}
	o.BatchID, o.Rejected = strings.CutSuffix(v, "#r")
	if o.Rejected {
		n, err := rdb.HExists(ctx, s.batchKey(o.BatchID), unbankedPrefix+requestID).Result()
		if err != nil {
			return Owner{}, false, fmt.Errorf("dispatch: read batch record: %w", err)
		}
		o.Unbanked = n
	}
	return o, true, nil
}

// ReadBatch reads the record of one batch; found is false when Redis holds
// none.
func ReadBatch(ctx context.Context, rdb redis.UniversalClient, prefix, batchID string) (BatchRecord, bool, error) {
	s := &store{prefix: prefix}
	return readBatch(ctx, rdb, s.batchKey(batchID), batchID)
}

func readBatch(ctx context.Context, rdb redis.UniversalClient, key, batchID string) (BatchRecord, bool, error) {
	v, err := rdb.HMGet(ctx, key, "state", "payoutId", "firstPostAt", "lease", "rail").Result()
	if err != nil {
		return BatchRecord{}, false, fmt.Errorf("dispatch: read batch record: %w", err)
	}
	st, _ := v[0].(string)
	if st == "" {
		return BatchRecord{}, false, nil
	}
	r := BatchRecord{BatchID: batchID, State: st, FirstPostAt: parseMillis(v[2])}
	r.PayoutID, _ = v[1].(string)
	r.Rail, _ = v[4].(string)
	if l := parseMillis(v[3]); l.UnixMilli() > 0 {
		r.LeaseUntil = l
	}
	return r, true, nil
}

// OpenBatches calls fn with every batch record that is not final (see
// BatchRecord.Final). It SCANs the dispatcher's keys (every master of a
// Redis Cluster: they share one slot, so one master holds them); fn is
// never called concurrently.
func OpenBatches(ctx context.Context, rdb redis.UniversalClient, prefix string, fn func(BatchRecord) error) error {
	s := &store{prefix: prefix}
	head := s.batchKey("")
	match := globEscape(head) + "*"
	var mu sync.Mutex
	node := func(ctx context.Context, c redis.UniversalClient) error {
		it := c.Scan(ctx, 0, match, 500).Iterator()
		for it.Next(ctx) {
			key := it.Val()
			r, ok, err := readBatch(ctx, rdb, key, strings.TrimPrefix(key, head))
			if err != nil {
				return err
			}
			if !ok || r.Final() {
				continue
			}
			mu.Lock()
			err = fn(r)
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return it.Err()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return node(ctx, c) })
	}
	return node(ctx, rdb)
}

// globEscape escapes the glob characters of a SCAN MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
