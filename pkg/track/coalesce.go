package track

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// coalescer sends the Lua calls of concurrent webhooks to Redis together:
// the first caller to find no batch in flight leads, and sends every call
// queued by then in one pipeline; callers that arrive meanwhile queue for
// the leader's next round. Each call stays its own atomic script on its own
// key: only the round trips are shared, so a burst of webhooks costs a few
// pipelines instead of one round trip per call. A leader serves at most
// maxRounds rounds, then hands the lead to the oldest waiting caller, so no
// request waits on others' traffic for long.
type coalescer struct {
	rdb redis.UniversalClient

	mu    sync.Mutex
	queue []*coCall
	busy  bool
}

type coCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{} // closed once cmd holds the answer
	leadCh chan struct{} // the lead is handed to this call
	taken  bool          // (c.mu) in a batch, or handed the lead: no longer cancellable
}

const (
	maxRounds     = 4
	maxBatch      = 512
	coalesceLimit = 5 * time.Second // one pipeline's deadline
)

// run runs script on keys with args, sharing the round trip with
// concurrent calls. A cancelled ctx withdraws a call still queued (it never
// runs); one already sent is waited for.
func (c *coalescer) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	call := &coCall{script: script, keys: keys, args: args, done: make(chan struct{}), leadCh: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	if !c.busy {
		c.busy = true
		c.lead(ctx)
		return call.cmd
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.cmd
	case <-call.leadCh:
	case <-ctx.Done():
		c.mu.Lock()
		if !call.taken { // still queued: withdraw it, it never runs
			for i, q := range c.queue {
				if q == call {
					c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
					break
				}
			}
			c.mu.Unlock()
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(ctx.Err())
			return cmd
		}
		c.mu.Unlock()
		select { // in flight (bounded by coalesceLimit), or leading next
		case <-call.done:
			return call.cmd
		case <-call.leadCh:
		}
	}
	c.mu.Lock() // handed the lead: this call heads the queue
	c.lead(ctx)
	return call.cmd
}

// lead runs rounds until the queue is empty; c.mu is held on entry and
// released on return.
func (c *coalescer) lead(ctx context.Context) {
	for round := 0; len(c.queue) > 0; round++ {
		if round == maxRounds {
			next := c.queue[0]
			next.taken = true
			c.mu.Unlock()
			next.leadCh <- struct{}{}
			return
		}
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		for _, b := range batch {
			b.taken = true
		}
		c.mu.Unlock()
		c.exec(ctx, batch)
		for _, b := range batch {
			close(b.done)
		}
		c.mu.Lock()
	}
	c.busy = false
	c.mu.Unlock()
}

// exec sends one batch in one pipeline (EVALSHA), then again those calls
// Redis refused with NOSCRIPT (a restarted Redis) once the scripts are
// loaded: a refused call did not run, so running it again is its only run.
func (c *coalescer) exec(ctx context.Context, batch []*coCall) {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), coalesceLimit)
	defer cancel()
	execScripts(ectx, c.rdb, batch)
}

// execScripts sends batch in one pipeline (EVALSHA) within ctx, then again
// those calls Redis refused with NOSCRIPT once the scripts are loaded.
func execScripts(ctx context.Context, rdb redis.UniversalClient, batch []*coCall) {
	for attempt := 0; len(batch) > 0; attempt++ {
		pipe := rdb.Pipeline()
		for _, b := range batch {
			b.cmd = b.script.EvalSha(ctx, pipe, b.keys, b.args...)
		}
		_, _ = pipe.Exec(ctx) // each call carries its own error
		if attempt > 0 {
			return
		}
		var again []*coCall
		loaded := map[*redis.Script]bool{}
		for _, b := range batch {
			if err := b.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				if !loaded[b.script] {
					loaded[b.script] = true
					_ = b.script.Load(ctx, rdb).Err()
				}
				again = append(again, b)
			}
		}
		batch = again
	}
}
