package track

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// freshCase is one transition the dispatcher's gate begins on a new key.
type freshCase struct {
	kind    kind
	to, via string
	ref     string
}

var freshCases = []freshCase{
	{kindRequest, string(payout.StatusSubmitted), "", "tx-1"},
	{kindRequest, string(payout.StatusPending), string(payout.StatusSubmitted), "t|x|2"},
	{kindRequest, string(payout.StatusApproved), "", ""},
	{kindBatch, string(payout.BatchPending), "", "p-\x00|3"},
}

// A new key written from the client (beginFresh) holds what the begin
// script's first step writes on it, byte for byte but the lease's end,
// which lies within the lease from Redis's clock before and after the
// call; and its TTL is the script's. With and without confirmation keys.
func TestFreshWriteIsTheScriptsWrite(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := rs.Client()
	for _, keyByKey := range []bool{false, true} {
		s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second).withKeyByKey(keyByKey)
		ep, err := s.epoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		trs := func(side string) []transition {
			var out []transition
			for i, c := range freshCases {
				out = append(out, transition{kind: c.kind, id: fmt.Sprint(side, "-", keyByKey, "-", i), to: c.to, via: c.via,
					ref: c.ref, final: payout.Status(c.to).Final(), verified: true, since: ep, fresh: true})
			}
			return out
		}
		tokens := func() []string {
			tok := newToken()
			out := make([]string, len(freshCases))
			for i := range out {
				out[i] = tok
			}
			return out
		}
		before := rdb.Time(ctx).Val().UnixMilli()
		pipeTrs, pipeToks := trs("pipe"), tokens()
		outs := make([]outcome, len(pipeTrs))
		froms := make([]string, len(pipeTrs))
		rest, err := s.beginFresh(ctx, pipeTrs, pipeToks, outs, froms)
		if err != nil {
			t.Fatal(err)
		}
		after := rdb.Time(ctx).Val().UnixMilli()
		if len(rest) != 0 {
			t.Fatalf("keyByKey %v: %v left to the script, want every new key written from the client", keyByKey, rest)
		}
		scrTrs, scrToks := trs("script"), tokens()
		souts, _, err := s.beginScripted(ctx, scrTrs, scrToks)
		if err != nil {
			t.Fatal(err)
		}
		for i := range freshCases {
			if outs[i] != outcomeOK || froms[i] != "" || souts[i] != outcomeOK {
				t.Fatalf("case %d: client %s after %q, script %s; want both ok after nothing", i, outs[i], froms[i], souts[i])
			}
			pk, sk := s.key(pipeTrs[i].kind, pipeTrs[i].id), s.key(scrTrs[i].kind, scrTrs[i].id)
			pv, sv := rdb.Get(ctx, pk).Val(), rdb.Get(ctx, sk).Val()
			p, err := parseStatusValue(pv)
			if err != nil {
				t.Fatalf("case %d: the client's value %q: %v", i, pv, err)
			}
			q, err := parseStatusValue(sv)
			if err != nil {
				t.Fatal(err)
			}
			end, err := strconv.ParseInt(p.fle, 10, 64)
			if err != nil || end < before+s.lease.Milliseconds() || end > after+s.lease.Milliseconds() {
				t.Fatalf("case %d: lease ends at %s, want within [%d, %d] + %v", i, p.fle, before, after, s.lease)
			}
			// Same value with the script's token, confirmation key and lease end.
			p.flt, p.fle = q.flt, q.fle
			if p.flc != "" {
				p.flc = s.confirmKey(scrToks[i], true)
			}
			if p != q || formatStatusValue(p) != sv {
				t.Fatalf("case %d (keyByKey %v): client wrote %q, script %q", i, keyByKey, pv, sv)
			}
			if (p.flc != "") == keyByKey {
				t.Fatalf("case %d: confirmation key %q with keyByKey %v", i, p.flc, keyByKey)
			}
			pt, st := rdb.PTTL(ctx, pk).Val(), rdb.PTTL(ctx, sk).Val()
			if pt <= 0 || st <= 0 || pt > st+time.Second || st > pt+time.Second {
				t.Fatalf("case %d: TTL %v from the client, %v from the script", i, pt, st)
			}
		}
		// Both read back as the same attempt, and end the same way.
		ok := make([]bool, len(freshCases))
		for i := range ok {
			ok[i] = true
		}
		if err := s.endAll(ctx, pipeTrs, pipeToks, ok); err != nil {
			t.Fatal(err)
		}
		if err := s.endAll(ctx, scrTrs, scrToks, ok); err != nil {
			t.Fatal(err)
		}
		for i := range freshCases {
			a, err := readStatusKey(ctx, rdb, s.key(pipeTrs[i].kind, pipeTrs[i].id))
			if err != nil {
				t.Fatal(err)
			}
			b, err := readStatusKey(ctx, rdb, s.key(scrTrs[i].kind, scrTrs[i].id))
			if err != nil {
				t.Fatal(err)
			}
			if a.st != freshCases[i].to || a.tx != freshCases[i].ref || a != b {
				t.Fatalf("case %d confirmed: client's key reads %+v, script's %+v", i, a, b)
			}
		}
	}
}

// One call that mixes new keys with keys in every other state answers each
// transition at its own index: new keys are granted, a key another attempt
// holds is busy, a key holding the status already is stale, a status that
// cannot start a key's life (RETURNED) is not granted, and the second copy
// of a key in the call is busy behind the first. A call sent again with the
// same token (go-redis re-sends a pipeline whose answer it lost) is granted
// the same attempts again, and writes nothing new.
func TestFreshCallAnswersEachTransition(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := rs.Client()
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	ep, err := s.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := func(id, to string) transition {
		return transition{kind: kindRequest, id: id, to: to, ref: "tx-" + id, verified: true, since: ep, fresh: true,
			final: payout.Status(to).Final()}
	}
	sub, pend := string(payout.StatusSubmitted), string(payout.StatusPending)
	// "held": another attempt's live lease; "done": SUBMITTED confirmed.
	if _, _, err := s.beginMany(ctx, []transition{tr("held", sub)}, []string{"other"}); err != nil {
		t.Fatal(err)
	}
	first := []transition{tr("done", sub)}
	if _, _, err := s.beginMany(ctx, first, []string{"earlier"}); err != nil {
		t.Fatal(err)
	}
	if err := s.endAll(ctx, first, []string{"earlier"}, []bool{true}); err != nil {
		t.Fatal(err)
	}
	call := []transition{tr("new-1", sub), tr("held", sub), tr("new-2", pend), tr("done", sub),
		tr("ret", string(payout.StatusReturned)), tr("new-1", sub), tr("new-3", sub)}
	want := []outcome{outcomeOK, outcomeBusy, outcomeOK, outcomeStale, outcomeStale, outcomeBusy, outcomeOK}
	tokens := make([]string, len(call))
	for i := range tokens {
		tokens[i] = "tok"
	}
	outs, froms, err := s.beginMany(ctx, call, tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i := range call {
		if outs[i] != want[i] {
			t.Fatalf("%d %s to %s: %s, want %s (all: %v)", i, call[i].id, call[i].to, outs[i], want[i], outs)
		}
	}
	if froms[3] != sub {
		t.Fatalf("stale SUBMITTED on done: previous %q", froms[3])
	}
	raw := map[string]string{}
	for _, id := range []string{"new-1", "new-2", "new-3"} {
		raw[id] = rdb.Get(ctx, s.key(kindRequest, id)).Val()
	}
	// The same call again, tokens and all.
	again, _, err := s.beginMany(ctx, call, tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i := range call {
		if again[i] != want[i] {
			t.Fatalf("replayed %d %s: %s, want %s", i, call[i].id, again[i], want[i])
		}
	}
	for id, v := range raw {
		if now := rdb.Get(ctx, s.key(kindRequest, id)).Val(); now != v {
			t.Fatalf("%s rewritten by the replay: %q, was %q", id, now, v)
		}
	}
}

// A transition left to the script (not expected new) comes before a later
// write of the same key in the call, as the script would begin them: the
// later one is not written ahead of it.
func TestFreshWriteKeepsTheCallsOrder(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ep, err := s.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	read := transition{kind: kindRequest, id: "k", to: string(payout.StatusPending), ref: "tx", since: ep} // not verified: unknown on a new key
	write := transition{kind: kindRequest, id: "k", to: string(payout.StatusSubmitted), ref: "tx", verified: true, since: ep, fresh: true}
	outs, _, err := s.beginMany(ctx, []transition{read, write}, []string{"t", "t"})
	if err != nil {
		t.Fatal(err)
	}
	if outs[0] != outcomeUnknown || outs[1] != outcomeOK {
		t.Fatalf("a read then a write of one new key: %v, want [unknown ok]", outs)
	}
}

// A call whose writes fail (Redis gone) fails: nothing is granted.
func TestFreshWriteFailureFailsTheCall(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	defer rdb.Close()
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	ep, err := s.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(failAfterTime{})
	tr := transition{kind: kindRequest, id: "gone", to: string(payout.StatusSubmitted), ref: "tx", verified: true, since: ep, fresh: true}
	if outs, _, err := s.beginMany(ctx, []transition{tr}, []string{"t"}); err == nil {
		t.Fatalf("begin with its SET refused: %v, no error", outs)
	}
}

// failAfterTime fails every pipeline holding a SET (beginFresh's), and
// nothing else: the script, were it asked instead, would grant the key.
type failAfterTime struct{}

func (failAfterTime) DialHook(next redis.DialHook) redis.DialHook { return next }
func (failAfterTime) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (failAfterTime) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "set" {
			return next(ctx, cmds)
		}
		for _, c := range cmds {
			c.SetErr(fmt.Errorf("refused by the test"))
		}
		return fmt.Errorf("refused by the test")
	}
}

// On a Redis Cluster every key is begun by the script, on its own node's
// clock: no key is written from the client, whose TIME would be another
// node's. (A script's own TIME counts in commandstats too, so the script
// calls are counted.)
func TestFreshWriteNotOnACluster(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl, err := config.RedisClient(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ctx := context.Background()
	cc, ok := cl.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("REDIS_URL's cluster form gave a %T", cl)
	}
	s := newStatusStore(cl, rc.Prefix(), time.Hour, 10*time.Second)
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.ConfigResetStat(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	// After the reset: the masters' stamps count their flushes
	// (stampScript), which a reset zeroes.
	ep, err := s.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var trs []transition
	var tokens []string
	for i := range 6 {
		trs = append(trs, transition{kind: kindRequest, id: fmt.Sprint("cl-", i), to: string(payout.StatusSubmitted),
			ref: "tx", verified: true, since: ep, fresh: true})
		tokens = append(tokens, "tok")
	}
	outs, _, err := s.beginMany(ctx, trs, tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if o != outcomeOK {
			t.Fatalf("%s: %s", trs[i].id, o)
		}
	}
	// One script call per key (and the epoch marker's): none of the SETs
	// went out on their own.
	var scripts atomic.Int64 // ForEachMaster runs on every master at once
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			for _, name := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), name); ok {
					calls, _, _ := strings.Cut(v, ",")
					c, _ := strconv.Atoi(calls)
					scripts.Add(int64(c))
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := scripts.Load(); n < int64(len(trs)) {
		t.Fatalf("%d script calls for %d keys on a cluster: keys written from the client", n, len(trs))
	}
}
