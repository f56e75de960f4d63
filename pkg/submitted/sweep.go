package submitted

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// markFinal sets the final field of a payout hash that still exists (a
// hash lost with Redis is not brought back without its TTL).
var markFinal = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'final', '1') end
return 0
`)

// MarkFinal records that the tracker saw a payout end (its batch and every
// transaction final), so that Unscheduled leaves it out. Call it before
// Done: a crash between the two leaves the payout scheduled, never lost.
func (s *Store) MarkFinal(ctx context.Context, payoutID string) error {
	return markFinal.Run(ctx, s.rdb, []string{s.payoutKey(payoutID)}).Err()
}

// sweepPage is how many hand-off keys one SCAN step and one pipelined
// check cover.
const sweepPage = 500

// Unscheduled calls fn with the ids of the payouts the hand-off records
// that are neither on the polling schedule nor marked final (MarkFinal), a
// page at a time. A partial Redis loss (a failover that lost the latest
// writes, an eviction) can drop a payout's schedule entry but keep the
// ready marker and the hash: nothing else would poll that payout again.
// It SCANs every master of a Redis Cluster; fn is never called
// concurrently.
func (s *Store) Unscheduled(ctx context.Context, fn func(payoutIDs []string) error) error {
	head := s.prefix + "payout:{"
	match := escapeGlob(head) + "*}"
	var mu sync.Mutex
	node := func(ctx context.Context, c redis.UniversalClient) error {
		it := c.Scan(ctx, 0, match, sweepPage).Iterator()
		var keys []string
		flush := func() error {
			ids, err := s.unscheduled(ctx, head, keys)
			keys = keys[:0]
			if err != nil || len(ids) == 0 {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			return fn(ids)
		}
		for it.Next(ctx) {
			keys = append(keys, it.Val())
			if len(keys) == sweepPage {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return node(ctx, c) })
	}
	return node(ctx, s.rdb)
}

// unscheduled checks one page of hand-off keys in one pipelined round trip.
func (s *Store) unscheduled(ctx context.Context, head string, keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	type check struct {
		id    string
		hash  *redis.SliceCmd
		score *redis.FloatCmd
	}
	checks := make([]check, 0, len(keys))
	pipe := s.rdb.Pipeline()
	for _, k := range keys {
		id := strings.TrimSuffix(strings.TrimPrefix(k, head), "}")
		if id == "" || strings.ContainsAny(id, "{}") || s.payoutKey(id) != k {
			continue
		}
		checks = append(checks, check{id, pipe.HMGet(ctx, k, "batchId", "final"), pipe.ZScore(ctx, s.pollKey(), id)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var ids []string
	for _, c := range checks {
		v, err := c.hash.Result()
		if err != nil || len(v) != 2 {
			continue
		}
		batchID, _ := v[0].(string)
		final, _ := v[1].(string)
		if batchID == "" || final != "" {
			continue // not a recorded payout, or it ended
		}
		if err := c.score.Err(); errors.Is(err, redis.Nil) {
			ids = append(ids, c.id)
		} else if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// escapeGlob escapes the SCAN MATCH pattern characters of s.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
