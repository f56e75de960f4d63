package ratelimit_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two replicas (separate clients), each with several callers, hammer one
// shared limit. The count granted over the window is the configured rate
// (plus the initial burst) within 10%: an assertion on how many tokens Redis
// grants, not on how fast this machine runs. The burst holds a second of
// tokens: callers stalled by a loaded box (at a burst of 10, 50 ms of
// tokens, a 300 ms stall lost 60 and failed the lower bound) lose none
// unless they stall longer, while two limits not shared would still grant
// twice the bound.
func TestLimiterSharedRateAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("3 s window")
	}
	const (
		rate   = 200.0
		burst  = 200
		window = 3 * time.Second
	)
	rs := testenv.Redis(t)
	key := rs.Key("wompi-api")
	var replicas []*ratelimit.Limiter
	for range 2 {
		l, err := ratelimit.NewLimiter(rs.NewClient(t), key, rate, burst)
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var granted [2]atomic.Int64
	var wg sync.WaitGroup
	for r, l := range replicas {
		for range 4 {
			wg.Go(func() {
				for {
					err := l.Wait(ctx)
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Error(err)
						}
						return
					}
					granted[r].Add(1)
				}
			})
		}
	}
	wg.Wait()
	total := granted[0].Load() + granted[1].Load()
	want := rate*window.Seconds() + burst
	t.Logf("granted %d (replica 0: %d, replica 1: %d), expected %.0f", total, granted[0].Load(), granted[1].Load(), want)
	if math.Abs(float64(total)-want) > 0.10*want {
		t.Fatalf("granted %d tokens in %v at %v/s burst %d; want %.0f ±10%%", total, window, rate, burst, want)
	}
	if granted[0].Load() == 0 || granted[1].Load() == 0 {
		t.Errorf("one replica starved: %d / %d", granted[0].Load(), granted[1].Load())
	}
}

func TestLimiterAllowAndRetryAfter(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	l, err := ratelimit.NewLimiter(rs.Client(), rs.Key("allow"), 2, 3) // one token per 500 ms
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, _, err := l.Allow(ctx); err != nil || !ok {
			t.Fatalf("burst token %d: ok=%v err=%v", i, ok, err)
		}
	}
	ok, after, err := l.Allow(ctx)
	if err != nil || ok {
		t.Fatalf("4th token: ok=%v err=%v, want denied", ok, err)
	}
	if after <= 0 || after > 500*time.Millisecond {
		t.Fatalf("retryAfter = %v, want in (0, 500ms]", after)
	}
	// Another replica sees the same state.
	other, _ := ratelimit.NewLimiter(rs.NewClient(t), rs.Key("allow"), 2, 3)
	if ok, _, _ := other.Allow(ctx); ok {
		t.Fatal("second replica got a token beyond the shared burst")
	}
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	rs := testenv.Redis(t)
	l, err := ratelimit.NewLimiter(rs.Client(), rs.Key("slow"), 0.2, 1) // one token per 5 s
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = l.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Wait returned %v after its context ended", d)
	}
}

func TestNewLimiterValidates(t *testing.T) {
	rs := testenv.Redis(t)
	tests := []struct {
		name  string
		key   string
		rate  float64
		burst int
	}{
		{"empty key", "", 1, 1},
		{"braces", "a{b}", 1, 1},
		{"zero rate", "k", 0, 1},
		{"NaN rate", "k", math.NaN(), 1},
		{"inf rate", "k", math.Inf(1), 1},
		{"zero burst", "k", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ratelimit.NewLimiter(rs.Client(), tc.key, tc.rate, tc.burst); !errors.Is(err, ratelimit.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}
