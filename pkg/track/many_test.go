package track

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The many-key scripts decide exactly as the one-key scripts do, key by
// key, for random states (confirmed, in flight, abandoned, empty) and random
// transitions, including one key twice in a call and calls cut into chunks:
// a differential test on a real Redis, the one-key path being the reference.
func TestManyKeyScriptsMatchOneKeyScripts(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	one := newStatusStore(rs.Client(), rs.Prefix()+"one:", time.Hour, 10*time.Second)
	one.chunk = 1
	many := newStatusStore(rs.Client(), rs.Prefix()+"many:", time.Hour, 10*time.Second)
	many.chunk = 7 // small, so that calls are cut into several chunks
	ep := mustEpoch(t, one)
	if err := rs.Client().Set(ctx, many.epochKey(), ep, 0).Err(); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	reqStatuses := append([]payout.Status{}, payout.Statuses...)
	batchStatuses := append([]payout.BatchStatus{}, payout.BatchStatuses...)
	pick := func(k kind) (string, bool) {
		if k == kindBatch {
			s := batchStatuses[rng.IntN(len(batchStatuses))]
			return string(s), s.Final()
		}
		s := reqStatuses[rng.IntN(len(reqStatuses))]
		return string(s), s.Final()
	}
	refs := []string{"tx-1", "tx-2"}
	kinds := []kind{kindRequest, kindBatch}

	for round := range 200 {
		// The same random state under both prefixes.
		for id := range 6 {
			for _, k := range kinds {
				var v statusValue
				if rng.IntN(3) > 0 {
					v.st, _ = pick(k)
					v.tx = refs[rng.IntN(2)]
				}
				switch rng.IntN(3) {
				case 1: // abandoned attempt
					v.fl, _ = pick(k)
					v.flt, v.fle, v.flx = "old", "0", refs[rng.IntN(2)]
				case 2: // live attempt
					v.fl, _ = pick(k)
					v.flt, v.flx = "old", refs[rng.IntN(2)]
					v.fle = fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())
				}
				for _, s := range []*statusStore{one, many} {
					key := s.key(k, fmt.Sprint("id-", id))
					rs.Client().Del(ctx, key)
					if v != (statusValue{}) {
						rs.Client().Set(ctx, key, formatStatusValue(v), 0)
					}
				}
			}
		}
		n := 1 + rng.IntN(20)
		trs := make([]transition, n)
		tokens := make([]string, n)
		for i := range trs {
			k := kinds[rng.IntN(2)]
			to, final := pick(k)
			trs[i] = transition{kind: k, id: fmt.Sprint("id-", rng.IntN(6)), to: to, ref: refs[rng.IntN(2)],
				final: final, verified: rng.IntN(4) > 0, since: ep}
			tokens[i] = fmt.Sprint("tok-", round, "-", i)
		}
		o1, f1, err := one.beginMany(ctx, trs, tokens)
		if err != nil {
			t.Fatal(err)
		}
		o2, f2, err := many.beginMany(ctx, trs, tokens)
		if err != nil {
			t.Fatal(err)
		}
		for i := range trs {
			if o1[i] != o2[i] || f1[i] != f2[i] {
				t.Fatalf("round %d, %+v: one key answered %s %q, many keys %s %q", round, trs[i], o1[i], f1[i], o2[i], f2[i])
			}
		}
		compareKeys(t, rs.Client(), one, many, kinds, fmt.Sprint("round ", round, " after begin"))

		// End every granted attempt, confirming some and abandoning others.
		var ends []transition
		var endTokens []string
		var oks []bool
		for i, o := range o1 {
			if o == outcomeOK {
				ends, endTokens, oks = append(ends, trs[i]), append(endTokens, tokens[i]), append(oks, rng.IntN(2) == 0)
			}
		}
		if len(ends) == 0 {
			continue
		}
		if err := one.endMany(ctx, ends, endTokens, oks); err != nil {
			t.Fatal(err)
		}
		if err := many.endMany(ctx, ends, endTokens, oks); err != nil {
			t.Fatal(err)
		}
		compareKeys(t, rs.Client(), one, many, kinds, fmt.Sprint("round ", round, " after end"))
	}
}

// compareKeys fails when a status key differs between the two stores (the
// lease expiry compared as absent, abandoned or live).
func compareKeys(t *testing.T, rdb redis.UniversalClient, a, b *statusStore, kinds []kind, when string) {
	t.Helper()
	ctx := context.Background()
	for id := range 6 {
		for _, k := range kinds {
			ka, kb := a.key(k, fmt.Sprint("id-", id)), b.key(k, fmt.Sprint("id-", id))
			va, err := readStatusKey(ctx, rdb, ka)
			if err != nil {
				t.Fatal(err)
			}
			vb, err := readStatusKey(ctx, rdb, kb)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []*statusValue{&va, &vb} {
				if v.fle != "" && v.fle != "0" {
					v.fle = "live"
				}
			}
			if va != vb {
				t.Fatalf("%s: %s holds %+v, %s holds %+v", when, ka, va, kb, vb)
			}
		}
	}
}

// A batch's transitions cost one script call per chunk of keys, begin and
// end, on one Redis; on a Redis Cluster (chunk 1) one call per key.
func TestManyKeyScriptsCallsPerChunk(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	rdb := rs.NewClient(t)
	var scripts atomic.Int64
	rdb.AddHook(countScripts{&scripts})
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	ep := mustEpoch(t, s)
	for _, sc := range []*redis.Script{beginManyScript, endManyScript} {
		if err := sc.Load(ctx, rdb).Err(); err != nil { // no NOSCRIPT round to count
			t.Fatal(err)
		}
	}
	scripts.Store(0)
	const n = 2*manyChunk + 10
	trs := make([]transition, n)
	tokens := make([]string, n)
	for i := range trs {
		trs[i] = transition{kind: kindRequest, id: fmt.Sprint("r-", i), to: string(payout.StatusSubmitted),
			ref: "tx", verified: true, since: ep}
		tokens[i] = newToken()
	}
	outs, _, err := s.beginMany(ctx, trs, tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if o != outcomeOK {
			t.Fatalf("transition %d: %s", i, o)
		}
	}
	// Three calls of beginManyScript, and one of epochScript: every key
	// was empty, so the epoch marker is read once (checkEpoch).
	if got := scripts.Swap(0); got != 4 {
		t.Errorf("begin of %d keys made %d script calls, want 4", n, got)
	}
	oks := make([]bool, n)
	for i := range oks {
		oks[i] = true
	}
	if err := s.endMany(ctx, trs, tokens, oks); err != nil {
		t.Fatal(err)
	}
	if got := scripts.Swap(0); got != 3 {
		t.Errorf("end of %d keys made %d script calls, want 3", n, got)
	}
	for _, i := range []int{0, manyChunk, n - 1} {
		if st, err := s.last(ctx, kindRequest, trs[i].id); err != nil || st != string(payout.StatusSubmitted) {
			t.Errorf("%s: confirmed %q (%v), want SUBMITTED", trs[i].id, st, err)
		}
	}

	for _, c := range []redis.UniversalClient{&redis.ClusterClient{}, &redis.Ring{}} {
		if got := newStatusStore(c, rs.Prefix(), time.Hour, time.Second).chunk; got != 1 {
			t.Errorf("a %T gets %d keys per script call, want 1", c, got)
		}
	}
}

// countScripts counts the script calls sent (EVALSHA and EVAL), pipelined
// or not.
type countScripts struct{ n *atomic.Int64 }

func (h countScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h countScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}

func (h countScripts) count(cmd redis.Cmder) {
	if n := cmd.Name(); n == "evalsha" || n == "eval" {
		h.n.Add(1)
	}
}

// Every status key carries the status TTL from its first begin on, whether
// its attempt is confirmed, abandoned or still in flight, through the
// one-key and the many-key scripts: none lives forever.
func TestStatusKeysExpire(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	const ttl = time.Hour
	for _, chunk := range []int{1, manyChunk} {
		s := newStatusStore(rs.Client(), rs.Prefix()+fmt.Sprint(chunk, ":"), ttl, 10*time.Second)
		s.chunk = chunk
		ep := mustEpoch(t, s)
		var trs []transition
		var tokens []string
		for i := range 3 {
			trs = append(trs, transition{kind: kindRequest, id: fmt.Sprint("r-", i), to: string(payout.StatusSubmitted),
				ref: "tx", verified: true, since: ep})
			tokens = append(tokens, newToken())
		}
		if _, _, err := s.beginMany(ctx, trs, tokens); err != nil {
			t.Fatal(err)
		}
		// r-0 confirmed, r-1 abandoned, r-2 left in flight.
		if err := s.endMany(ctx, trs[:2], tokens[:2], []bool{true, false}); err != nil {
			t.Fatal(err)
		}
		for _, tr := range trs {
			d, err := rs.Client().PTTL(ctx, s.key(tr.kind, tr.id)).Result()
			if err != nil || d <= ttl-time.Minute || d > ttl {
				t.Errorf("chunk %d, %s: TTL %v (%v), want about %v", chunk, tr.id, d, err, ttl)
			}
		}
	}
}
