package track

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
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

// renew extends the leases of the attempts (trs[i], tokens[i]), one script
// call per chunk of keys, within ctx (not through the coalescer, whose own
// deadline would outlast a renewal's), and returns how many of them are
// still ours.
func (s *statusStore) renew(ctx context.Context, trs []transition, tokens []string) (int, error) {
	n := 0
	for lo := 0; lo < len(trs); lo += s.chunk {
		hi := min(lo+s.chunk, len(trs))
		keys := make([]string, 0, hi-lo)
		args := make([]any, 0, 1+hi-lo)
		args = append(args, s.lease.Milliseconds())
		for i := lo; i < hi; i++ {
			keys = append(keys, s.key(trs[i].kind, trs[i].id))
			args = append(args, tokens[i])
		}
		k, err := renewScript.Run(ctx, s.rdb, keys, args...).Int()
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// leaseLost reports a renewal that could not keep every attempt's lease:
// err is Redis's error, or nil when some attempt was already taken over. It
// must not call back into the holder's stop or keep.
type leaseLost func(held, want int, err error)

// holder renews the leases of a set of live attempts (keepAlive).
type holder struct {
	s      *statusStore
	lost   leaseLost
	mu     sync.Mutex
	trs    []transition
	tokens []string
	timer  *time.Timer
	next   time.Time // when the renewal in progress (or the next one) was due
	done   bool
}

// renewsPerLease is how many renewals a lease spans: a holder cut off from
// Redis loses its keys only after renewsPerLease-1 renewals in a row failed.
const renewsPerLease = 4

// keepAlive extends the leases of the attempts every quarter of a lease,
// at a fixed rate from now and each call bounded by an eighth of a lease,
// until stop: an attempt whose produce, or whose wait for another key,
// outlasts its lease keeps its key. A lease that ran out would let another
// worker emit a later status that the still pending produce then follows
// on the topic. Nothing runs before the first quarter of a lease, so the
// common short attempt costs one timer.
//
// A holder that dies stops renewing, and its keys are free a lease later. A
// holder cut off from Redis for three renewals in a row loses them: lost is
// told of every renewal that failed or found a key taken over (the one case
// the lease cannot cover; see the package documentation).
func (s *statusStore) keepAlive(trs []transition, tokens []string, lost leaseLost) *holder {
	h := &holder{s: s, lost: lost, trs: trs, tokens: tokens}
	if len(trs) == 0 {
		h.done = true
		return h
	}
	every := s.lease / renewsPerLease
	h.mu.Lock()
	h.next = time.Now().Add(every)
	h.timer = time.AfterFunc(every, h.renew)
	h.mu.Unlock()
	return h
}

func (h *holder) renew() {
	every := h.s.lease / renewsPerLease
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return
	}
	trs, tokens := h.trs, h.tokens
	h.mu.Unlock()
	held, err := h.renewWithin(every/2, trs, tokens)
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return // ended meanwhile: a shortfall is the end, not a loss
	}
	now := time.Now()
	for !h.next.After(now) {
		h.next = h.next.Add(every)
	}
	h.timer.Reset(h.next.Sub(now))
	h.mu.Unlock()
	if (err != nil || held < len(trs)) && h.lost != nil {
		h.lost(held, len(trs), err)
	}
}

// renewWithin renews, giving up after d: go-redis bounds a call by its
// socket timeouts (seconds), not by the context, unless the client was
// built with ContextTimeoutEnabled. A call given up on may still land, and
// extend only a lease that is still ours.
func (h *holder) renewWithin(d time.Duration, trs []transition, tokens []string) (int, error) {
	type result struct {
		held int
		err  error
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		n, err := h.s.renew(ctx, trs, tokens)
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		return r.held, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("no answer within %v: %w", d, ctx.Err())
	}
}

// keep narrows the renewed attempts to trs[i] for each i of idx (indexes in
// the current set): the others were ended.
func (h *holder) keep(idx []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trs, h.tokens = pick(h.trs, idx), pick(h.tokens, idx)
	if len(h.trs) == 0 {
		h.stopLocked()
	}
}

// stop ends the renewals; it may be called more than once.
func (h *holder) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopLocked()
}

func (h *holder) stopLocked() {
	h.done = true
	if h.timer != nil {
		h.timer.Stop()
	}
}

// leaseLostError words a renewal's failure for the logs.
func leaseLostError(held, want int, err error) error {
	if err != nil {
		return fmt.Errorf("track: renew %d status leases: %w", want, err)
	}
	return fmt.Errorf("track: %d of %d status leases were taken over before their produce ended", want-held, want)
}

// CheckIdempotentProducer refuses a client that may fail a record whose
// outcome is unknown (idempotence off, or produce cancellation allowed):
// the status gate frees a key when its record failed, which is safe only if
// a failed record was never written.
func CheckIdempotentProducer(cl *kgo.Client) error {
	for _, opt := range []any{kgo.DisableIdempotentWrite, kgo.AllowIdempotentProduceCancellation} {
		if on, _ := cl.OptValue(opt).(bool); on {
			return errors.New("the status producer must keep franz-go's idempotent writes on, without produce cancellation (DisableIdempotentWrite and AllowIdempotentProduceCancellation are refused)")
		}
	}
	return nil
}
