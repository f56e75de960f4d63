package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bulk is a rate limit shared by every process on the same Redis key, from
// which a caller reserves many tokens in one round trip: the generic cell
// rate algorithm of [Limiter], whose theoretical arrival time moves by n
// emission intervals at once. The reply says when each of the n tokens
// conforms; a [Pacer] then hands them out locally, in order. A single-payout
// rail's batch reserves every call it will make (a lookup and a POST per
// payee) once, so its Redis work does not grow with the batch.
//
// Tokens a caller reserves but does not use are lost to everyone until
// their time passes: reserve what you will use.
type Bulk struct {
	rdb      redis.UniversalClient
	key      string
	interval time.Duration
	burst    int
}

// NewBulk returns a bulk limiter of rate tokens per second with the given
// burst on key (stored as "bulk:{key}"; key must not contain braces).
func NewBulk(rdb redis.UniversalClient, key string, rate float64, burst int) (*Bulk, error) {
	if err := checkLimit(rdb, key, rate, burst); err != nil {
		return nil, err
	}
	iv := time.Duration(float64(time.Second) / rate)
	if iv < time.Microsecond {
		iv = time.Microsecond
	}
	return &Bulk{rdb: rdb, key: "bulk:{" + key + "}", interval: iv, burst: burst}, nil
}

// bulkScript moves the theoretical arrival time (microseconds, Redis's
// clock) by n intervals and returns the wait of the first token: token i
// (from 1) conforms at tat + i*T - burst*T, as in redis_rate's GCRA.
var bulkScript = redis.NewScript(`
local T, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local first = tat + T - burst * T - now
local newtat = tat + n * T
redis.call('SET', KEYS[1], string.format('%d', newtat), 'PX', math.ceil((newtat - now) / 1000) + 1000)
return string.format('%d', first)
`)

// Reserve takes n tokens (n >= 1) in one round trip.
func (b *Bulk) Reserve(ctx context.Context, n int) (*Pacer, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: reserve %d tokens", ErrInvalid, n)
	}
	s, err := bulkScript.Run(ctx, b.rdb, []string{b.key}, b.interval.Microseconds(), b.burst, n).Text()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: reserve: %w", err)
	}
	firstUs, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: reserve answered %q", s)
	}
	now := time.Now()
	first := time.Duration(firstUs) * time.Microsecond
	p := &Pacer{waits: make([]time.Duration, n)}
	for i := range p.waits {
		p.waits[i] = max(0, first+time.Duration(i)*b.interval)
	}
	p.at = now
	return p, nil
}

// Pacer hands out the tokens of one reservation, in order, each when it
// conforms. Safe for concurrent use.
type Pacer struct {
	mu    sync.Mutex
	at    time.Time       // when the reply arrived
	waits []time.Duration // token i's wait from at
	next  int
}

// Waits returns each token's wait from the reply (for tests).
func (p *Pacer) Waits() []time.Duration { return append([]time.Duration(nil), p.waits...) }

// Wait blocks until the next token conforms and takes it. ok is false when
// every token was taken (reserve more); the error is ctx's.
func (p *Pacer) Wait(ctx context.Context) (ok bool, err error) {
	p.mu.Lock()
	if p.next >= len(p.waits) {
		p.mu.Unlock()
		return false, nil
	}
	due := p.at.Add(p.waits[p.next])
	p.next++
	p.mu.Unlock()
	d := time.Until(due)
	if d <= 0 {
		return true, ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return true, nil
	}
}
