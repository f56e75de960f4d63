package track

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// emitRequests is emitRequest for many verified request transitions at
// once, as a poll reads them from Wompi (one page of a payout's
// transactions): one pipelined begin for all, their events produced
// together, one pipelined end for all. Each transition keeps the per-key
// guarantees of emit (lease, forward only, nothing confirmed unless Kafka
// has it); what the batch cannot settle at once (a key another attempt
// holds) goes through emitRequest one by one. It returns how many events it
// produced and the first error.
//
// since is the epoch marker taken before the transactions were read.
func (e *Engine) emitRequests(ctx context.Context, scs []*payout.StatusChange, since string) (int, error) {
	if len(scs) == 0 {
		return 0, nil
	}
	trs := make([]transition, len(scs))
	tokens := make([]string, len(scs))
	token := newToken()
	for i, sc := range scs {
		trs[i] = transition{kind: kindRequest, id: sc.RequestID, to: string(sc.Status), ref: deref(sc.TransactionID),
			final: settled(sc.Rail, sc.Status), verified: true, since: since, rail: deref(sc.Rail)}
		tokens[i] = token // one per call: endGranted confirms them with one key
	}
	outs, froms, err := e.statuses.beginMany(ctx, trs, tokens)
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}

	// Produce every transition that is ours.
	type result struct {
		i   int
		err error
	}
	// The granted leases are held from here on: Produce itself may block
	// while franz-go's buffer is full (a stalled broker).
	var granted []int
	for i, out := range outs {
		if out == outcomeOK {
			granted = append(granted, i)
		}
	}
	ka := e.statuses.keepAlive(pick(trs, granted), pick(tokens, granted), pick(froms, granted), true, e.leaseLost)
	pctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	defer cancel()
	results := make(chan result, len(scs))
	var ours []int
	var slow []int // held by another attempt (or unknown): one by one
	var firstErr error
	start := time.Now()
	for i, out := range outs {
		switch out {
		case outcomeOK:
			sc := scs[i]
			sc.EventID = payout.EventID("status", sc.RequestID, string(sc.Status), trs[i].ref)
			sc.PreviousStatus = nil
			if froms[i] != "" {
				p := payout.Status(froms[i])
				sc.PreviousStatus = &p
			}
			v, err := e.cfg.Codec.AppendStatusChange(nil, sc)
			if err != nil {
				results <- result{i, fmt.Errorf("track: encode request event: %w", err)}
				ours = append(ours, i)
				continue
			}
			ours = append(ours, i)
			e.producer.Produce(pctx, &kgo.Record{Topic: e.cfg.Topics.Status, Key: []byte(sc.RequestID), Value: v},
				func(_ *kgo.Record, err error) { results <- result{i, err} })
		case outcomeStale:
			if froms[i] == trs[i].to {
				e.m.duplicates.WithLabelValues(string(kindRequest)).Inc()
			} else {
				e.m.regressions.WithLabelValues(string(kindRequest)).Inc()
			}
		case outcomeReread:
			// Read before a Redis data loss: the next poll reads it again.
			e.m.rereads.WithLabelValues(string(kindRequest)).Inc()
			firstErr = cmpErr(firstErr, errNoReread)
		case outcomeBusy, outcomeUnknown:
			slow = append(slow, i)
		default:
			firstErr = cmpErr(firstErr, fmt.Errorf("track: begin script answered %q", out))
		}
	}
	produced := make([]bool, len(scs))
	errs := make([]error, len(scs))
	answered := make([]bool, len(scs))
	waiting := len(ours)
wait:
	for ; waiting > 0; waiting-- {
		select {
		case r := <-results:
			errs[r.i], answered[r.i] = r.err, true
		case <-pctx.Done():
			break wait
		}
	}
	elapsed := time.Since(start).Seconds()
	var late, latePos []int // ours is granted, in the same order
	for k, i := range ours {
		if !answered[i] {
			latePos = append(latePos, k)
			// Still in flight, and perhaps written yet: settled in the
			// background, its key held until franz-go settles it (see
			// settleLate), so no later status can be emitted before it.
			late = append(late, i)
			errs[i] = pctx.Err()
			continue
		}
		produced[i] = errs[i] == nil
		e.m.produce.Observe(elapsed)
	}
	if len(late) > 0 {
		at := make(map[int]int, len(late))
		for k, i := range late {
			at[i] = k
		}
		ka.keep(latePos)
		e.settleLate(ctx, pick(trs, late), pick(tokens, late), ka, func() []error {
			out := make([]error, len(late))
			for range late {
				r := <-results
				out[at[r.i]] = r.err
			}
			return out
		})
	} else {
		ka.stop()
	}

	// Confirm what Kafka has, abandon the rest, in one round trip.
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer ecancel()
	var endTrs []transition
	var endTokens []string
	var endOK []bool
	for _, i := range ours {
		if !answered[i] {
			continue
		}
		if perhapsWritten(errs[i]) {
			continue // perhaps sent: left to its lease
		}
		endTrs, endTokens, endOK = append(endTrs, trs[i]), append(endTokens, tokens[i]), append(endOK, produced[i])
	}
	if len(endTrs) > 0 {
		if err := e.statuses.endGranted(ectx, len(ours), endTrs, endTokens, endOK); err != nil {
			// Produced but not confirmed: the leases expire, a retry emits
			// the same eventIds again at worst.
			e.log.Warn("track: confirm statuses", "transitions", len(endTrs), "err", err)
		}
	}
	n := 0
	for _, i := range ours {
		if !produced[i] {
			firstErr = cmpErr(firstErr, fmt.Errorf("%w: kafka produce: %w", errUnavailable, errs[i]))
			continue
		}
		n++
		e.m.transitions.WithLabelValues(string(kindRequest), string(scs[i].Source), trs[i].to).Inc()
		e.m.railTransitions.WithLabelValues(trs[i].rail, string(kindRequest), string(scs[i].Source), trs[i].to).Inc()
	}
	for _, i := range slow {
		res, err := e.emitRequest(ctx, scs[i], true, since, nil)
		switch {
		case err != nil:
			firstErr = cmpErr(firstErr, err)
		case res == emitNew:
			n++
		case res == emitReread:
			firstErr = cmpErr(firstErr, errNoReread)
		}
	}
	return n, firstErr
}

// pick returns xs[i] for every i of idx.
func pick[T any](xs []T, idx []int) []T {
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = xs[i]
	}
	return out
}

// beginMany runs begin for every transition: the keys expected new by one
// pipelined SET NX each after a read of Redis's clock (beginFresh, two
// round trips), the others by one script call per chunk of keys (see
// statusStore.chunk) in one pipelined round trip. On one Redis
// the attempts name their token's confirmation key, so give them one token
// (see "Confirmation by batch" at beginScript); every attempt it grants
// under a token must then be released (checkEpoch does, before returning,
// and withdraw, when beginMany fails after a grant) or ended: all at once by endAll (the confirmation key), or, while some
// are still in flight or left to their leases, key by key (endGranted
// chooses; the engine's emitRequests and settleLate, and Gate.End).
func (s *statusStore) beginMany(ctx context.Context, trs []transition, tokens []string) ([]outcome, []string, error) {
	distinctTokens(trs, tokens)
	outs := make([]outcome, len(trs))
	froms := make([]string, len(trs))
	// The keys expected new are written first, without a script
	// (beginFresh); the script begins the others.
	rest, err := s.beginFresh(ctx, trs, tokens, outs, froms)
	if err != nil {
		return nil, nil, s.withdraw(ctx, trs, tokens, granted(outs), err)
	}
	if len(rest) > 0 {
		all := len(rest) == len(trs)
		strs, stoks := trs, tokens
		if !all {
			strs, stoks = pick(trs, rest), pick(tokens, rest)
		}
		souts, sfroms, err := s.beginScripted(ctx, strs, stoks)
		if err != nil {
			return nil, nil, s.withdraw(ctx, trs, tokens, granted(outs), err)
		}
		if all {
			outs, froms = souts, sfroms
		} else {
			for k, i := range rest {
				outs[i], froms[i] = souts[k], sfroms[k]
			}
		}
	}
	ours := granted(outs)
	if err := s.checkEpoch(ctx, trs, tokens, outs, froms); err != nil {
		return nil, nil, s.withdraw(ctx, trs, tokens, ours, err)
	}
	return outs, froms, nil
}

// granted returns the positions of the attempts outs grants.
func granted(outs []outcome) []int {
	var idx []int
	for i, o := range outs {
		if o == outcomeOK {
			idx = append(idx, i)
		}
	}
	return idx
}

// withdraw releases the attempts at positions idx, which beginMany granted
// before it failed with cause: its caller produces nothing for them. Left
// alone, each would outlive its lease as an attempt perhaps emitted, and
// the same status asked again, or the one it passes through (via), would
// be refused for good although no event was written. An attempt whose
// grant was not read back (its answer lost) is left to its lease.
func (s *statusStore) withdraw(ctx context.Context, trs []transition, tokens []string, idx []int, cause error) error {
	if len(idx) == 0 {
		return cause
	}
	keys, args := make([][]string, len(idx)), make([][]any, len(idx))
	for k, i := range idx {
		keys[k], args[k] = []string{s.key(trs[i].kind, trs[i].id)}, []any{tokens[i]}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lease)
	defer cancel()
	if err := s.runPipelined(rctx, releaseScript, keys, args); err != nil {
		return fmt.Errorf("%w (and releasing its %d attempts: %v)", cause, len(idx), err)
	}
	return cause
}

// beginScripted runs the begin script for every transition, one script
// call per chunk of keys, in one pipelined round trip.
func (s *statusStore) beginScripted(ctx context.Context, trs []transition, tokens []string) ([]outcome, []string, error) {
	var calls []*coCall
	var firsts []int // the index of each call's first transition
	for lo := 0; lo < len(trs); lo += s.chunk {
		hi := min(lo+s.chunk, len(trs))
		firsts = append(firsts, lo)
		if s.chunk == 1 {
			calls = append(calls, &coCall{script: beginScript, keys: []string{s.key(trs[lo].kind, trs[lo].id)},
				args: s.beginArgs(trs[lo], tokens[lo])})
			continue
		}
		keys, args := s.beginManyArgs(trs[lo:hi], tokens[lo:hi])
		calls = append(calls, &coCall{script: beginManyScript, keys: keys, args: args})
	}
	if err := s.runCalls(ctx, calls); err != nil {
		return nil, nil, err
	}
	outs := make([]outcome, len(trs))
	froms := make([]string, len(trs))
	for c, call := range calls {
		res, err := call.cmd.StringSlice()
		if err != nil {
			return nil, nil, err
		}
		if call.script == beginScript {
			if len(res) != 2 {
				return nil, nil, fmt.Errorf("track: begin script answered %d values for 1 key", len(res))
			}
			outs[firsts[c]], froms[firsts[c]] = outcome(res[0]), res[1]
			continue
		}
		if err := parseBeginMany(res, outs[firsts[c]:firsts[c]+len(call.keys)], froms[firsts[c]:firsts[c]+len(call.keys)]); err != nil {
			return nil, nil, err
		}
	}
	return outs, froms, nil
}

// beginOutcomes are beginManyScript's outcome letters.
var beginOutcomes = [256]outcome{'o': outcomeOK, 's': outcomeStale, 'u': outcomeUnknown, 'b': outcomeBusy}

// parseBeginMany reads beginManyScript's answer (its two strings: one
// outcome letter per key, and the previous statuses joined with '|') into
// outs and froms, one per key of the call. An answer of another shape, or
// with a letter begin never answers, is an error: nothing of it is used.
func parseBeginMany(res []string, outs []outcome, froms []string) error {
	if len(res) != 2 || len(res[0]) != len(outs) || strings.Count(res[1], "|") != len(outs)-1 {
		return fmt.Errorf("track: begin script answered a reply of another shape for %d keys", len(outs))
	}
	rest := res[1]
	for k := range outs {
		o := beginOutcomes[res[0][k]]
		if o == "" {
			return fmt.Errorf("track: begin script answered outcome %q", res[0][k])
		}
		outs[k] = o
		from, next, _ := strings.Cut(rest, "|")
		froms[k], rest = from, next
	}
	return nil
}

// distinctTokens gives every further copy of a key in trs whose token an
// earlier copy already has a token of its own (that token, '#' and a
// number), in tokens, in place; tokens already distinct are kept, so a
// second call changes nothing. begin answers an attempt it already granted
// to the same token with the same grant (a replayed call), so the copies of
// one call must differ for the second to be busy while the first's attempt
// is live, as one call's copies always were.
func distinctTokens(trs []transition, tokens []string) {
	seen := make(map[string]struct{}, len(trs))
	for i, tr := range trs {
		if _, again := seen[tr.id]; !again {
			seen[tr.id] = struct{}{}
			continue
		}
		// Rare: an earlier transition of the call has this id.
		for n := 1; tokenUsed(trs[:i], tokens, tr, tokens[i]); n++ {
			tokens[i] = tokens[i] + "#" + strconv.Itoa(n)
		}
	}
}

// tokenUsed reports whether a transition of earlier on tr's key has token.
func tokenUsed(earlier []transition, tokens []string, tr transition, token string) bool {
	for j, e := range earlier {
		if e.id == tr.id && e.kind == tr.kind && tokens[j] == token {
			return true
		}
	}
	return false
}

// beginManyArgs are beginManyScript's keys and arguments for trs.
func (s *statusStore) beginManyArgs(trs []transition, tokens []string) ([]string, []any) {
	type group struct {
		kind                   kind
		to, via                string
		verified, final, fresh bool
	}
	groups := map[group]int{}
	gfrom, guntil := s.graceWindow()
	head := []any{s.lease.Milliseconds(), s.ttl.Milliseconds(), gfrom, guntil, s.confirmKey("", true), len(requestRestart)}
	head = append(head, requestRestart...)
	type slot struct {
		group int
		token string
	}
	slots := map[slot]int{}
	var defs, slotDefs []any
	keys := make([]string, len(trs))
	per := make([]any, 0, 2*len(trs))
	for i, tr := range trs {
		g := group{tr.kind, tr.to, tr.via, tr.verified, tr.final, tr.fresh}
		n, ok := groups[g]
		if !ok {
			n = len(groups) + 1
			groups[g] = n
			from := s.requestFrom[payout.Status(cmp.Or(tr.via, tr.to))]
			if tr.kind == kindBatch {
				from = s.batchFrom[payout.BatchStatus(tr.to)]
			}
			defs = append(defs, tr.to, boolArg(tr.kind == kindRequest), boolArg(tr.verified), boolArg(tr.final), boolArg(tr.fresh),
				tr.via, len(from))
			defs = append(defs, from...)
		}
		sl := slot{n, tokens[i]}
		m, ok := slots[sl]
		if !ok {
			m = len(slots) + 1
			slots[sl] = m
			slotDefs = append(slotDefs, n, tokens[i])
		}
		keys[i] = s.key(tr.kind, tr.id)
		per = append(per, m, tr.ref)
	}
	args := make([]any, 0, len(head)+2+len(defs)+len(slotDefs)+len(per))
	args = append(append(append(append(args, head...), len(groups)), defs...), len(slots))
	args = append(append(args, slotDefs...), per...)
	return keys, args
}

// endMany ends every transition key by key, in one pipelined round trip:
// one script call per chunk of keys. It is for part of a token's attempts
// (the others still in flight, or left to their leases); endAll is cheaper
// when every attempt its tokens hold ends at once.
func (s *statusStore) endMany(ctx context.Context, trs []transition, tokens []string, ok []bool) error {
	results := make([]string, len(ok))
	for i := range ok {
		results[i] = endResult(ok[i])
	}
	return s.endManyAs(ctx, trs, tokens, results)
}

// endManyAs is endMany with each key's end script result: "ok" confirms,
// "at:<status>" abandons the attempt at that status, anything else abandons
// it at its own.
func (s *statusStore) endManyAs(ctx context.Context, trs []transition, tokens []string, results []string) error {
	var calls []*coCall
	for lo := 0; lo < len(trs); lo += s.chunk {
		hi := min(lo+s.chunk, len(trs))
		if hi-lo == 1 {
			calls = append(calls, &coCall{script: endScript, keys: []string{s.key(trs[lo].kind, trs[lo].id)},
				args: []any{tokens[lo], results[lo]}})
			continue
		}
		keys := make([]string, 0, hi-lo)
		args := make([]any, 0, 2*(hi-lo))
		for i := lo; i < hi; i++ {
			keys = append(keys, s.key(trs[i].kind, trs[i].id))
			args = append(args, tokens[i], results[i])
		}
		calls = append(calls, &coCall{script: endManyScript, keys: keys, args: args})
	}
	return s.runCalls(ctx, calls)
}

// endGranted ends the attempts trs (ok[i]: trs[i]'s event was produced)
// of the granted ones that beginMany granted under their tokens. When they
// are all of them, it ends them with endAll; otherwise (the others still
// in flight, or left to their leases) key by key, with endMany: a token's
// confirmation key would also confirm its attempts not ended here, whose
// events may never be produced.
func (s *statusStore) endGranted(ctx context.Context, granted int, trs []transition, tokens []string, ok []bool) error {
	if len(trs) == granted {
		return s.endAll(ctx, trs, tokens, ok)
	}
	return s.endMany(ctx, trs, tokens, ok)
}

// endAll ends every attempt that beginMany granted under tokens, all of
// them: on one Redis (chunk > 1) it abandons the failed ones and writes the
// confirmation key of the others' tokens in one script call
// (endConfirmScript). An attempt of one of those tokens left out would read
// as confirmed with its event perhaps never produced: pass part of a
// token's attempts to endMany instead. When the call would take more than a
// chunk of keys (many failures, or many tokens), on a Cluster, and with
// keyByKey, it ends each key instead (endMany). One round trip.
func (s *statusStore) endAll(ctx context.Context, trs []transition, tokens []string, ok []bool) error {
	var abandon []int
	var confirm []string
	seen := map[string]bool{}
	for i := range trs {
		switch {
		case !ok[i]:
			abandon = append(abandon, i)
		case !seen[tokens[i]]:
			seen[tokens[i]] = true
			confirm = append(confirm, tokens[i])
		}
	}
	if s.chunk == 1 || s.keyByKey || len(abandon)+len(confirm) > s.chunk {
		return s.endMany(ctx, trs, tokens, ok)
	}
	keys := make([]string, 0, len(abandon)+len(confirm))
	args := make([]any, 0, 2+len(abandon))
	args = append(args, len(abandon), s.ttl.Milliseconds())
	for _, i := range abandon {
		keys = append(keys, s.key(trs[i].kind, trs[i].id))
		args = append(args, tokens[i])
	}
	for _, tok := range confirm {
		keys = append(keys, s.doneKey(tok))
	}
	return s.runCalls(ctx, []*coCall{{script: endConfirmScript, keys: keys, args: args}})
}

// runPipelined runs script once per key set in one pipelined round trip.
func (s *statusStore) runPipelined(ctx context.Context, script *redis.Script, keys [][]string, args [][]any) error {
	calls := make([]*coCall, len(keys))
	for i := range keys {
		calls[i] = &coCall{script: script, keys: keys[i], args: args[i]}
	}
	return s.runCalls(ctx, calls)
}

// runCalls runs calls in one pipelined round trip, through the coalescer's
// exec (which re-runs calls a restarted Redis refused with NOSCRIPT). The
// first failed call fails the whole.
func (s *statusStore) runCalls(ctx context.Context, calls []*coCall) error {
	s.co.exec(ctx, calls)
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			return err
		}
	}
	return nil
}
