package track

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// renewScript extends the leases of live attempts: ARGV[1] is the lease in
// ms, ARGV[2] the status TTL in ms, then five per key: token, status, its
// previous status, transaction id, confirmation key ("" for none). A key
// whose attempt is no longer ours (ended, confirmed by its batch's key,
// abandoned, or taken over after the lease ran out) is left alone. A
// missing key lost its attempt with a Redis data loss while the event was
// still being produced: it is written back, holding only the attempt (the
// confirmed status was lost with it), so that no status emitted after the
// loss can precede the pending one; if its batch's confirmation key exists
// already (the renewal landed after the batch ended), it is written back
// abandoned instead. The answer is how many leases are still ours.
var renewScript = redis.NewScript(renewLua)

const renewLua = luaStatus + luaBegin + `
local lease, ttl, t, n = tonumber(ARGV[1]), tonumber(ARGV[2]), now(), 0
local leaseEnd = string.format('%d', t + lease)
for i = 1, #KEYS do
  local a = 3 + 5 * (i - 1)
  local tok, to, from, ref, flc = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    if flc ~= '' and confirmed(flc) then
      -- The attempt's batch has ended since the loss (this renewal landed
      -- late): whether its event was produced is unknown here. Written
      -- back live, the confirmation key would make it read as emitted
      -- even if its produce failed; abandoned, it refuses lower statuses
      -- and may be emitted again.
      save(KEYS[i], ttl, '', '', to, from, tok, '0', ref, '')
    else
      save(KEYS[i], ttl, '', '', to, from, tok, leaseEnd, ref, flc)
      n = n + 1
    end
  else
    local st, tx, fl, flp, flt, fle, flx, kflc = load(KEYS[i])
    if fl ~= '' and flt == tok and fle ~= '0' then
      save(KEYS[i], nil, st, tx, fl, flp, flt, leaseEnd, flx, kflc)
      n = n + 1
    end
  end
end
return n
`

// renew extends the leases of the attempts (trs[i], tokens[i]), one script
// call per chunk of keys, all in one pipeline (on a Cluster, one call per
// key), within ctx (not through the coalescer, whose own deadline would
// outlast a renewal's), and returns how many of them are still ours. many
// says they were begun by beginMany, so that a key written back names its
// token's confirmation key, as begin wrote it.
func (s *statusStore) renew(ctx context.Context, trs []transition, tokens, froms []string, many bool) (int, error) {
	var calls []*coCall
	for lo := 0; lo < len(trs); lo += s.chunk {
		hi := min(lo+s.chunk, len(trs))
		keys := make([]string, 0, hi-lo)
		args := make([]any, 0, 2+5*(hi-lo))
		args = append(args, s.lease.Milliseconds(), s.ttl.Milliseconds())
		for i := lo; i < hi; i++ {
			keys = append(keys, s.key(trs[i].kind, trs[i].id))
			args = s.appendRenewArgs(args, trs[i], tokens[i], froms[i], many)
		}
		calls = append(calls, &coCall{script: renewScript, keys: keys, args: args})
	}
	execScripts(ctx, s.rdb, calls)
	n := 0
	var first error
	for _, c := range calls {
		k, err := c.cmd.Int()
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		n += k
	}
	return n, first
}

// appendRenewArgs appends one key's arguments to renewScript's: the
// attempt's token, status, previous status and transaction id, and its
// confirmation key.
func (s *statusStore) appendRenewArgs(args []any, tr transition, token, from string, many bool) []any {
	return append(args, token, tr.to, from, tr.ref, s.confirmKey(token, many))
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
	froms  []string // each attempt's previous status, to write it back
	many   bool     // begun by beginMany (statusStore.renew)
	timer  *time.Timer
	next   time.Time // when the renewal in progress (or the next one) was due
	done   bool
}

// renewsPerLease is how many renewals a lease spans at least: a holder cut
// off from Redis loses its keys only after renewsPerLease-1 renewals in a
// row failed.
const renewsPerLease = 4

// maxRenewEvery bounds the pause between two renewals, whatever the lease:
// after a Redis data loss a holder writes its attempt back at its next
// renewal, which must come well within DefaultLossGrace.
const maxRenewEvery = time.Second

// renewEvery is the pause between two renewals of a lease.
func (s *statusStore) renewEvery() time.Duration {
	return min(s.lease/renewsPerLease, maxRenewEvery)
}

// keepAlive extends the leases of the attempts (froms[i] is each one's
// previous status; many: begun by beginMany) every quarter of a lease or
// maxRenewEvery, whichever is shorter, at a fixed rate from now and each
// call bounded by half that pause, until stop: an attempt whose produce, or whose wait for another key,
// outlasts its lease keeps its key. A lease that ran out would let another
// worker emit a later status that the still pending produce then follows
// on the topic. Nothing runs before the first quarter of a lease, so the
// common short attempt costs one timer.
//
// A holder that dies stops renewing, and its keys are free a lease later. A
// holder cut off from Redis for three renewals in a row loses them: lost is
// told of every renewal that failed or found a key taken over (the one case
// the lease cannot cover; see the package documentation).
func (s *statusStore) keepAlive(trs []transition, tokens, froms []string, many bool, lost leaseLost) *holder {
	h := &holder{s: s, lost: lost, trs: trs, tokens: tokens, froms: froms, many: many}
	if len(trs) == 0 {
		h.done = true
		return h
	}
	every := s.renewEvery()
	h.mu.Lock()
	h.next = time.Now().Add(every)
	h.timer = time.AfterFunc(every, h.renew)
	h.mu.Unlock()
	return h
}

func (h *holder) renew() {
	every := h.s.renewEvery()
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return
	}
	trs, tokens, froms := h.trs, h.tokens, h.froms
	h.mu.Unlock()
	held, err := h.renewWithin(every/2, trs, tokens, froms)
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
func (h *holder) renewWithin(d time.Duration, trs []transition, tokens, froms []string) (int, error) {
	type result struct {
		held int
		err  error
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		n, err := h.s.renew(ctx, trs, tokens, froms, h.many)
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
	h.trs, h.tokens, h.froms = pick(h.trs, idx), pick(h.tokens, idx), pick(h.froms, idx)
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

// perhapsWritten reports a produce failure after which the record may
// still be in Kafka: franz-go fails a record only once it is known not to
// be written, except at the client's close. Such an attempt is left to its
// lease, never abandoned.
func perhapsWritten(err error) bool {
	return errors.Is(err, kgo.ErrClientClosed)
}

// IsLeaseRenewal reports whether cmd renews status keys' leases, or loads
// the renewal's script for it: a call driven by time (a produce that
// outlasts a renewal interval), not by the work a batch holds. Tests that
// count round trips per batch leave it out.
func IsLeaseRenewal(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 2 {
		return false
	}
	name, _ := args[0].(string)
	arg, _ := args[1].(string)
	switch {
	case strings.EqualFold(name, "evalsha"):
		return arg == renewScript.Hash()
	case strings.EqualFold(name, "script") && strings.EqualFold(arg, "load") && len(args) > 2:
		src, _ := args[2].(string)
		sum := sha1.Sum([]byte(src))
		return hex.EncodeToString(sum[:]) == renewScript.Hash()
	}
	return false
}
