package track

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// renewScript extends the leases of live attempts: ARGV[1] is the lease in
// ms, then one token per key. A key whose attempt is no longer ours (ended,
// abandoned, or taken over after the lease ran out) is left alone; the
// answer is how many leases were extended.
var renewScript = redis.NewScript(luaStatus + luaBegin + `
local lease, t, n = tonumber(ARGV[1]), now(), 0
for i = 1, #KEYS do
  local st, tx, fl, flp, flt, fle, flx = load(KEYS[i])
  if fl ~= '' and flt == ARGV[i + 1] and fle ~= '0' then
    save(KEYS[i], nil, st, tx, fl, flp, flt, string.format('%d', t + lease), flx)
    n = n + 1
  end
end
return n
`)

// renew extends the leases of the attempts (trs[i], tokens[i]) in one
// pipelined round trip, and returns how many of them are still ours.
func (s *statusStore) renew(ctx context.Context, trs []transition, tokens []string) (int, error) {
	var calls []*coCall
	for lo := 0; lo < len(trs); lo += s.chunk {
		hi := min(lo+s.chunk, len(trs))
		keys := make([]string, 0, hi-lo)
		args := make([]any, 0, 1+hi-lo)
		args = append(args, s.lease.Milliseconds())
		for i := lo; i < hi; i++ {
			keys = append(keys, s.key(trs[i].kind, trs[i].id))
			args = append(args, tokens[i])
		}
		calls = append(calls, &coCall{script: renewScript, keys: keys, args: args})
	}
	if err := s.runCalls(ctx, calls); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range calls {
		k, err := c.cmd.Int()
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// leaseLost reports a renewal that could not keep every attempt's lease:
// err is Redis's error, or nil when some attempt was already taken over.
type leaseLost func(held, want int, err error)

// keepAlive extends the leases of the attempts every third of a lease until
// the returned stop is called, so that an attempt whose produce, or whose
// wait for another key, outlasts a lease keeps its key: a lease that ran out
// would let another worker emit a later status that the still pending
// produce then follows on the topic. Nothing runs before the first third of
// a lease has passed, so the common short attempt costs one timer.
//
// A holder that dies stops renewing, and its keys are free a lease later. A
// holder cut off from Redis cannot renew: lost is called, and the lease runs
// out (the one case the lease cannot cover; see the package documentation).
func (s *statusStore) keepAlive(trs []transition, tokens []string, lost leaseLost) (stop func()) {
	if len(trs) == 0 {
		return func() {}
	}
	every := s.lease / 3
	var mu sync.Mutex
	stopped := false
	var timer *time.Timer
	renew := func() {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		held, err := s.renew(ctx, trs, tokens)
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return // ended meanwhile: a shortfall is the end, not a loss
		}
		if (err != nil || held < len(trs)) && lost != nil {
			lost(held, len(trs), err)
		}
		timer.Reset(every)
	}
	mu.Lock()
	timer = time.AfterFunc(every, renew)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
	}
}

// leaseLostError words a renewal's failure for the logs.
func leaseLostError(held, want int, err error) error {
	if err != nil {
		return fmt.Errorf("track: renew %d status leases: %w", want, err)
	}
	return fmt.Errorf("track: %d of %d status leases were taken over before their produce ended", want-held, want)
}
