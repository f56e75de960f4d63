package track

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A call whose context ends once it was sent (taken into a leader's round)
// is not withdrawn: it runs, so its caller waits for its answer. Told
// "cancelled", a webhook would take a begin that granted it, or an end that
// confirmed its status, for one that never ran.
func TestCoalescerCancelledCallInFlightGetsItsAnswer(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	c := &coalescer{rdb: rs.Client()}
	slow := redis.NewScript(`local i = 0 while i < 20000000 do i = i + 1 end return redis.call('INCR', KEYS[1])`)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c.mu.Lock()
			ok := cond()
			c.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, slow, []string{rs.Prefix() + "leader"}).Err() }()
	waitFor("the leader's call never went out", func() bool { return c.busy && len(c.queue) == 0 })
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answer := make(chan *redis.Cmd, 1)
	go func() { answer <- c.run(cctx, slow, []string{rs.Prefix() + "sent"}) }()
	waitFor("the second call never queued", func() bool { return len(c.queue) == 1 })
	// The leader's next round takes it: it is in flight, and then cancelled.
	waitFor("the second call never went out", func() bool { return len(c.queue) == 0 })
	cancel()
	if n, err := (<-answer).Int(); err != nil || n != 1 {
		t.Fatalf("cancelled call in flight: %d %v, want its answer 1", n, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := rs.Client().Get(ctx, rs.Prefix()+"sent").Int(); err != nil || n != 1 {
		t.Fatalf("the call ran %d times (%v), want once", n, err)
	}
}

// Only a call Redis refused with NOSCRIPT (it never ran) is sent again: a
// call that failed otherwise may have run (its writes made before the
// error, or a timeout after Redis ran it), and sent again it would run
// twice.
func TestCoalescerSendsAgainOnlyCallsThatNeverRan(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	c := &coalescer{rdb: rs.Client()}
	failing := redis.NewScript(`redis.call('INCR', KEYS[1]) return redis.error_reply('ERR failed after its write')`)
	if err := failing.Load(ctx, rs.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.run(ctx, failing, []string{rs.Prefix() + "ran"}).Err(); err == nil {
		t.Fatal("the failing call answered no error")
	}
	if n, err := rs.Client().Get(ctx, rs.Prefix()+"ran").Int(); err != nil || n != 1 {
		t.Fatalf("the call ran %d times (%v), want once", n, err)
	}
}
