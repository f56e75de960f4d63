package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Limiter is a rate limit shared by every process that uses the same Redis
// key: together they are granted at most rate tokens per second on average,
// plus an initial burst. It is the generic cell rate algorithm of
// github.com/go-redis/redis_rate, whose state is one Redis key holding the
// theoretical arrival time, so each decision is one atomic script call. The
// clock is Redis's own (TIME), so replicas' clock skew does not matter.
//
// A Limiter is safe for concurrent use. When Redis fails, Allow and Wait
// return the error and grant nothing (they fail closed).
type Limiter struct {
	rl    *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
}

// NewLimiter returns a limiter of rate tokens per second (fractions allowed,
// e.g. 0.5 is one token every 2 s) with the given burst (>= 1), on key. The
// key is stored as "rate:{key}": a hash tag, so on Redis Cluster it lives in
// one slot; key must not contain braces. Every replica must use the same key,
// rate and burst.
func NewLimiter(rdb redis.UniversalClient, key string, rate float64, burst int) (*Limiter, error) {
	if err := checkLimit(rdb, key, rate, burst); err != nil {
		return nil, err
	}
	return &Limiter{
		rl:    redis_rate.NewLimiter(rdb),
		key:   "{" + key + "}",
		limit: toLimit(rate, burst),
	}, nil
}

// checkLimit checks a shared rate limit's parameters.
func checkLimit(rdb redis.UniversalClient, key string, rate float64, burst int) error {
	switch {
	case rdb == nil:
		return fmt.Errorf("%w: nil Redis client", ErrInvalid)
	case key == "" || strings.ContainsAny(key, "{}"):
		return fmt.Errorf("%w: limiter key %q must be non-empty and free of braces", ErrInvalid, key)
	case !(rate > 0) || math.IsInf(rate, 0) || rate > 1e6:
		return fmt.Errorf("%w: rate %v must be in (0, 1e6] per second", ErrInvalid, rate)
	case burst < 1:
		return fmt.Errorf("%w: burst %d must be >= 1", ErrInvalid, burst)
	}
	return nil
}

// toLimit expresses rate/s as redis_rate's integer Rate per Period; only
// Period/Rate (the emission interval) and Burst matter to the algorithm.
func toLimit(rate float64, burst int) redis_rate.Limit {
	if rate == math.Trunc(rate) {
		return redis_rate.Limit{Rate: int(rate), Burst: burst, Period: time.Second}
	}
	return redis_rate.Limit{Rate: 1, Burst: burst, Period: time.Duration(float64(time.Second) / rate)}
}

// Allow takes a token if one is available now. When it is not, ok is false
// and retryAfter says when one will be (for this caller, if nobody else takes
// it first).
func (l *Limiter) Allow(ctx context.Context) (ok bool, retryAfter time.Duration, err error) {
	res, err := l.rl.Allow(ctx, l.key, l.limit)
	if err != nil {
		return false, 0, fmt.Errorf("ratelimit: allow: %w", err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}

// Wait blocks until a token is granted, sleeping for the RetryAfter that
// Redis reports between attempts. It returns ctx's error if ctx ends first
// (no token is then taken), or a Redis error.
func (l *Limiter) Wait(ctx context.Context) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, after, err := l.Allow(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if after < time.Millisecond {
			after = time.Millisecond
		}
		if timer == nil {
			timer = time.NewTimer(after)
		} else {
			timer.Reset(after)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// RailRate is the rate limit of one rail's API: PerSecond tokens per second
// on average (fractions allowed), plus a burst of Burst (>= 1).
type RailRate struct {
	PerSecond float64
	Burst     int
}

// RailLimiters is one [Limiter] per rail: each rail's API calls draw from
// a bucket of their own, whose key names the rail ([RailLimiterKey]), so a
// rail's traffic never takes another rail's tokens. A rail without a rate
// gets no token: Wait and Allow return an error for it (they fail closed).
type RailLimiters struct {
	by map[rail.Name]*Limiter
}

// RailLimiterKey is the key of a rail's bucket ("" is Wompi): prefix +
// "<rail>-post", stored as "rate:{...}" by [NewLimiter]. Wompi's is
// prefix+"wompi-post", the key of the dispatcher's one limiter before
// rails, so an upgrade keeps its state.
func RailLimiterKey(prefix string, r rail.Name) string {
	return prefix + string(railOrWompi(r)) + "-post"
}

// NewRailLimiters returns a limiter per rail of rates ("" is Wompi), each
// on [RailLimiterKey](prefix, rail). Every replica must use the same prefix
// and rates.
func NewRailLimiters(rdb redis.UniversalClient, prefix string, rates map[rail.Name]RailRate) (*RailLimiters, error) {
	l := &RailLimiters{by: make(map[rail.Name]*Limiter, len(rates))}
	for r, rate := range rates {
		if err := validRail(r); err != nil {
			return nil, err
		}
		r = railOrWompi(r)
		if _, dup := l.by[r]; dup {
			return nil, fmt.Errorf("%w: rail %s has two rates", ErrInvalid, r)
		}
		lim, err := NewLimiter(rdb, RailLimiterKey(prefix, r), rate.PerSecond, rate.Burst)
		if err != nil {
			return nil, fmt.Errorf("rail %s: %w", r, err)
		}
		l.by[r] = lim
	}
	return l, nil
}

func (l *RailLimiters) of(r rail.Name) (*Limiter, error) {
	lim := l.by[railOrWompi(r)]
	if lim == nil {
		// Not ErrInvalid: a rail left without a rate is a setting to
		// fix, not a reason to give up on what waits for a token.
		return nil, fmt.Errorf("ratelimit: no rate limit for rail %q", railOrWompi(r))
	}
	return lim, nil
}

// Allow takes a token of the rail's bucket if one is available now, as
// [Limiter.Allow].
func (l *RailLimiters) Allow(ctx context.Context, r rail.Name) (ok bool, retryAfter time.Duration, err error) {
	lim, err := l.of(r)
	if err != nil {
		return false, 0, err
	}
	return lim.Allow(ctx)
}

// Wait blocks until the rail's bucket grants a token, as [Limiter.Wait].
func (l *RailLimiters) Wait(ctx context.Context, r rail.Name) error {
	lim, err := l.of(r)
	if err != nil {
		return err
	}
	return lim.Wait(ctx)
}
