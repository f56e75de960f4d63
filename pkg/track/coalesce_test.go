package track

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

var incrScript = redis.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)

// Concurrent calls share pipelines yet each runs exactly once, even when
// Redis forgets its scripts mid-way (NOSCRIPT: refused calls run again
// once, after a load).
func TestCoalescerRunsEachCallOnce(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	c := &coalescer{rdb: rs.Client()}
	const workers, calls, keys = 48, 150, 6
	seen := make([]map[int64]bool, keys)
	for i := range seen {
		seen[i] = map[int64]bool{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				if w == 0 && i%50 == 25 {
					rs.Client().ScriptFlush(ctx)
				}
				k := (w + i) % keys
				v, err := c.run(ctx, incrScript, []string{fmt.Sprintf("%sco:%d", rs.Prefix(), k)}, 1).Int64()
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				if seen[k][v] {
					errs <- fmt.Errorf("key %d answered %d twice", k, v)
				}
				seen[k][v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for k := range keys {
		n, err := rs.Client().Get(ctx, fmt.Sprintf("%sco:%d", rs.Prefix(), k)).Int()
		if err != nil {
			t.Fatal(err)
		}
		if n != len(seen[k]) {
			t.Fatalf("key %d holds %d after %d answered calls", k, n, len(seen[k]))
		}
		total += n
	}
	if total != workers*calls {
		t.Fatalf("%d increments for %d calls", total, workers*calls)
	}
}

// A call whose context ends while it waits in the queue is withdrawn and
// never runs.
func TestCoalescerWithdrawsCancelledCall(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	c := &coalescer{rdb: rs.Client()}
	slow := redis.NewScript(`local i = 0 while i < 20000000 do i = i + 1 end return redis.call('INCR', KEYS[1])`)
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, slow, []string{rs.Prefix() + "slow"}).Err() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		inFlight := c.busy && len(c.queue) == 0
		c.mu.Unlock()
		if inFlight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow call never went out")
		}
		time.Sleep(time.Millisecond)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.run(cctx, incrScript, []string{rs.Prefix() + "withdrawn"}, 1).Err(); err != context.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The queue is idle again and the withdrawn call never ran.
	if err := c.run(ctx, incrScript, []string{rs.Prefix() + "after"}, 1).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rs.Client().Exists(ctx, rs.Prefix()+"withdrawn").Result(); err != nil || n != 0 {
		t.Fatalf("withdrawn call ran: exists=%d err=%v", n, err)
	}
}
