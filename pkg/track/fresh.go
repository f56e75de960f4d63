package track

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// beginFresh begins, with one pipelined SET NX per key, the attempts of trs
// whose key is expected new (transition.fresh: the dispatcher's first
// status of a request or batch), and answers the indexes of trs still to
// begin by script: those not eligible, and those whose key exists. A
// granted attempt gets outcomeOK and previous status "" in outs and froms.
//
// It writes what begin's first step writes on an absent key (luaBegin:
// the same value, TTL and condition), but from the client: Redis spends
// about 1.1–1.3 µs more per key running that step in the script than the
// same SET pipelined (BenchmarkDispatcherGate), and this SET is one of the
// three keys each request creates (see docs/performance.md). The script's step takes Redis's clock at the
// write; here it is read just before (TIME), and again right after the
// writes on the same connection. A lease so ends the time the writes took
// to land earlier than the script's would; when that time is more than a
// sliver of the lease (freshLag: a CLIENT PAUSE, a failover, retries), the
// leases are renewed at once on Redis's clock, and a key another attempt
// took over meanwhile is answered busy. The loss grace (graceWindow) only
// starts at a time already past when its marker is known, and the clock
// only advances until the write: a write the script would refuse for the
// grace is not made (a marker seen after the clock was read is caught by
// checkEpoch, as a loss the script met before its marker was known). A key
// that exists is left to the script, which reads it: an attempt this call
// already wrote (a pipeline go-redis re-sent after a lost answer) is
// granted to its token again there, as by the script.
//
// Only on one Redis (chunk > 1): on a Cluster the keys live on several
// nodes, whose clocks may differ from the one TIME reads.
func (s *statusStore) beginFresh(ctx context.Context, trs []transition, tokens []string, outs []outcome, froms []string) ([]int, error) {
	if s.chunk == 1 {
		return all(len(trs)), nil
	}
	w := freshPool.Get().(*freshWrites)
	defer w.put()
	// fresh[i]: trs[i] is written here; the others are left to the script.
	fresh := grow(w.fresh, len(trs))
	w.fresh = fresh
	n := 0
	for i, tr := range trs {
		fresh[i] = s.freshWrite(tr)
		if fresh[i] {
			n++
		}
	}
	if n == 0 {
		return all(len(trs)), nil
	}
	if n < len(trs) {
		if n -= keepOrder(trs, fresh); n == 0 {
			return all(len(trs)), nil
		}
	}
	// The grace as known before the clock is read: a marker cached after
	// it would be dated after it (checkEpoch catches that one).
	gfrom, guntil := s.graceWindow()
	clock, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("track: read Redis's clock: %w", err)
	}
	now := clock.UnixMilli()
	if now >= gfrom && now < guntil {
		return all(len(trs)), nil
	}
	// The lease runs from Redis's clock when TIME ran: it ends the time
	// from there to the write earlier than the script's would.
	leaseEnd := now + s.lease.Milliseconds()

	// Every key and value in one string, and every command's arguments in
	// one slice: a few allocations per call instead of several per key.
	// A value is its attempt's part (the same for every key of a status and
	// token) and its transaction id.
	buf, ends, part := w.buf[:0], w.ends[:0], w.part[:0]
	var to, tok string
	for i, tr := range trs {
		if !fresh[i] {
			continue
		}
		if len(part) == 0 || tr.to != to || tokens[i] != tok {
			to, tok = tr.to, tokens[i]
			part = appendFresh(part[:0], to, tok, leaseEnd, s.confirmKey(tok, true), "")
		}
		buf = s.appendKey(buf, tr.kind, tr.id)
		ends = append(ends, len(buf))
		buf = append(append(buf, part...), tr.ref...)
		ends = append(ends, len(buf))
	}
	w.buf, w.ends, w.part = buf, ends, part
	whole := string(buf)
	strs := grow(w.strs, len(ends))
	w.strs = strs
	lo := 0
	for k, hi := range ends {
		strs[k], lo = whole[lo:hi], hi
	}
	ttl := any(max(1, s.ttl.Milliseconds()))
	cmds, args := grow(w.cmds, n), grow(w.args, 6*n)
	w.cmds, w.args = cmds, args
	ifs := grow(w.ifs, n)
	w.ifs = ifs
	for c := range n {
		// SET <key> <value> PX <ttl> NX, as the script's step sends it.
		a := args[6*c : 6*c+6 : 6*c+6]
		a[0], a[1], a[2], a[3], a[4], a[5] = "set", &strs[2*c], &strs[2*c+1], "px", ttl, "nx"
		cmds[c] = *redis.NewBoolCmd(ctx, a...)
		ifs[c] = &cmds[c]
	}
	pipe := s.rdb.Pipeline()
	_ = pipe.BatchProcess(ctx, ifs...)
	// Redis's clock again, after the writes on the same connection: how
	// much of the lease they may have spent before they landed.
	landed := pipe.Time(ctx)
	// Exec reports the first failed command; an existing key (a nil
	// answer, false) is no failure, so every command is read below.
	_, _ = pipe.Exec(ctx)
	var rest []int
	c := 0
	for i := range trs {
		if !fresh[i] {
			rest = append(rest, i)
			continue
		}
		set, err := cmds[c].Result()
		c++
		if err != nil {
			return nil, fmt.Errorf("track: begin the new status keys: %w", err)
		}
		if !set {
			rest = append(rest, i)
			continue
		}
		outs[i], froms[i] = outcomeOK, ""
	}
	at, err := landed.Result()
	if err != nil {
		return nil, fmt.Errorf("track: read Redis's clock after the new status keys: %w", err)
	}
	if lag := at.UnixMilli() - now; lag > freshLag(s.lease).Milliseconds() {
		if err := s.renewFresh(ctx, trs, tokens, outs); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

// freshLag is how much of a lease beginFresh's writes may spend before they
// land, unrenewed: far below a holder's first renewal (keepAlive), and
// about what a call of a few thousand keys takes. Writes that took longer
// (a CLIENT PAUSE, a failover, a slow network and its retries) are renewed
// at once, on Redis's clock, as the script would have written them.
func freshLag(lease time.Duration) time.Duration {
	return min(lease/8, 250*time.Millisecond)
}

// renewFresh renews, key by key, the leases of the attempts beginFresh
// granted (outs[i] ok): a lease written with a clock read long before the
// write may have run out already, and another attempt may have taken the
// key over since. Those are answered busy, as the script would have
// answered them had it run after the other attempt; nothing of theirs was
// emitted yet.
func (s *statusStore) renewFresh(ctx context.Context, trs []transition, tokens []string, outs []outcome) error {
	var calls []*coCall
	var idx []int
	for i, o := range outs {
		if o != outcomeOK {
			continue
		}
		idx = append(idx, i)
		calls = append(calls, &coCall{script: renewScript, keys: []string{s.key(trs[i].kind, trs[i].id)},
			args: s.appendRenewArgs([]any{s.lease.Milliseconds(), s.ttl.Milliseconds()}, trs[i], tokens[i], "", true)})
	}
	execScripts(ctx, s.rdb, calls)
	for k, c := range calls {
		held, err := c.cmd.Int()
		if err != nil {
			return fmt.Errorf("track: renew the leases of new status keys written late: %w", err)
		}
		if held == 0 {
			outs[idx[k]] = outcomeBusy
		}
	}
	return nil
}

// freshWrites are beginFresh's buffers, kept from call to call in
// freshPool: a batch's call writes a few thousand keys.
type freshWrites struct {
	fresh []bool
	buf   []byte
	part  []byte
	ends  []int
	strs  []string
	cmds  []redis.BoolCmd
	args  []any
	ifs   []redis.Cmder
}

var freshPool = sync.Pool{New: func() any { return new(freshWrites) }}

// put returns w to freshPool, without what its last call referenced (its
// context, keys and values), unless it grew past a few batches' worth.
func (w *freshWrites) put() {
	if cap(w.cmds) > 1<<14 || cap(w.buf) > 4<<20 {
		return
	}
	clear(w.strs)
	clear(w.cmds)
	clear(w.args)
	clear(w.ifs)
	freshPool.Put(w)
}

// grow returns xs resized to n, reallocated when it is too small.
func grow[T any](xs []T, n int) []T {
	if cap(xs) < n {
		return make([]T, n)
	}
	return xs[:n]
}

// keepOrder leaves to the script (clears fresh[i] for) every transition
// whose key an earlier transition of the call, left to the script, names:
// the script begins a call's transitions in order, and the writes here come
// before it, so that one would otherwise be begun before the earlier one.
// (Of two transitions written here on one key, the first is written first
// and the second, finding the key, goes to the script after it: in order.)
// It answers how many it cleared.
func keepOrder(trs []transition, fresh []bool) int {
	type key struct {
		kind kind
		id   string
	}
	scripted := make(map[key]struct{})
	cleared := 0
	for i, tr := range trs {
		k := key{tr.kind, tr.id}
		if !fresh[i] {
			scripted[k] = struct{}{}
			continue
		}
		if _, ok := scripted[k]; ok {
			fresh[i] = false
			cleared++
		}
	}
	return cleared
}

// all returns 0, 1, ..., n-1.
func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// freshWrite reports whether begin's first step applies to tr: its key is
// expected new, the status may start a key's life, and it was read from the
// provider or is final (luaBegin).
func (s *statusStore) freshWrite(tr transition) bool {
	if !tr.fresh || !(tr.verified || tr.final) {
		return false
	}
	var from []any
	if tr.kind == kindBatch {
		from = s.batchFrom[payout.BatchStatus(tr.to)]
	} else {
		from = s.requestFrom[payout.Status(cmp.Or(tr.via, tr.to))]
	}
	return slices.Contains(from, any(""))
}

// appendFresh appends the status key's value that begin's first step
// writes (luaStatus's enc of no status, the attempt at to under token,
// leaseEnd, the confirmation key flc and the transaction id ref).
func appendFresh(dst []byte, to, token string, leaseEnd int64, flc, ref string) []byte {
	dst = append(dst, '|')
	dst = append(dst, to...)
	dst = append(dst, "||"...)
	dst = strconv.AppendInt(dst, leaseEnd, 10)
	dst = append(dst, '|')
	dst = append(dst, token...)
	dst = append(dst, '|')
	if flc != "" {
		dst = append(dst, 'c')
		dst = strconv.AppendInt(dst, int64(len(flc)), 10)
		dst = append(dst, '|')
	}
	dst = append(dst, "0|"...)
	dst = append(dst, flc...)
	return append(dst, ref...)
}
