package track

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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
	if err := rs.Client().Set(ctx, many.epochKey(), marker(ep), 0).Err(); err != nil {
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
		if err := one.endAll(ctx, ends, endTokens, oks); err != nil {
			t.Fatal(err)
		}
		if err := many.endAll(ctx, ends, endTokens, oks); err != nil {
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
				v.flc = "" // one key per call names none
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
	var scripts, sets atomic.Int64
	rdb.AddHook(countScripts{&scripts, &sets})
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	ep := mustEpoch(t, s)
	for _, sc := range []*redis.Script{beginManyScript, endConfirmScript, endManyScript, endScript} {
		if err := sc.Load(ctx, rdb).Err(); err != nil { // no NOSCRIPT round to count
			t.Fatal(err)
		}
	}
	const n = 2*manyChunk + 10
	// failed is how many of the batch's produces failed: they are abandoned
	// and the rest confirmed by one key, in one script call, or, past a
	// chunk of keys, the keys are ended by one call per chunk.
	for _, c := range []struct{ failed, endScripts int }{{0, 1}, {100, 1}, {manyChunk + 1, 3}} {
		scripts.Store(0)
		sets.Store(0)
		trs := make([]transition, n)
		tokens := make([]string, n)
		token := newToken()
		for i := range trs {
			trs[i] = transition{kind: kindRequest, id: fmt.Sprint("r-", c.failed, "-", i), to: string(payout.StatusSubmitted),
				ref: "tx", verified: true, since: ep}
			tokens[i] = token
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
		// Three calls of beginManyScript, and one of epochScript: every
		// key was empty, so the epoch marker is read once (checkEpoch).
		if got := scripts.Swap(0); got != 4 {
			t.Errorf("begin of %d keys made %d script calls, want 4", n, got)
		}
		sets.Store(0) // the epoch check's
		oks := make([]bool, n)
		for i := range oks {
			oks[i] = i >= c.failed
		}
		if err := s.endAll(ctx, trs, tokens, oks); err != nil {
			t.Fatal(err)
		}
		// No SET outside the script: the confirmation is written with the
		// abandons, never apart from them.
		if got, sets := scripts.Swap(0), sets.Swap(0); got != int64(c.endScripts) || sets != 0 {
			t.Errorf("end of %d keys, %d failed: %d script calls and %d SETs, want %d and 0", n, c.failed, got, sets, c.endScripts)
		}
		for _, i := range []int{0, manyChunk, manyChunk + 1, n - 1} {
			want := string(payout.StatusSubmitted)
			if i < c.failed {
				want = "" // abandoned: never read as confirmed
			}
			if st, err := s.last(ctx, kindRequest, trs[i].id); err != nil || st != want {
				t.Errorf("%s: confirmed %q (%v), want %q", trs[i].id, st, err, want)
			}
		}
		// The scripts read them so too: the next transition's previous
		// status is SUBMITTED only where SUBMITTED was produced.
		next := []transition{trs[0], trs[n-1]}
		for i := range next {
			next[i].to = string(payout.StatusPending)
		}
		_, froms, err := s.beginMany(ctx, next, []string{"next", "next"})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "", false: string(payout.StatusSubmitted)}[c.failed > 0]; froms[0] != want || froms[1] != string(payout.StatusSubmitted) {
			t.Errorf("PENDING after a batch with %d failed produces follows %q and %q", c.failed, froms[0], froms[1])
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
type countScripts struct{ n, sets *atomic.Int64 }

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
	} else if n == "set" && h.sets != nil {
		h.sets.Add(1)
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

// Two faults at once: some produces of a batch failed, and abandoning them
// fails too (Redis refused the call). Nothing may then be confirmed: a
// confirmation written anyway would make the failed ones read as emitted,
// and their events would be lost. Every attempt stays unconfirmed, and once
// the leases run out the statuses may be emitted again.
func TestConfirmationNotWrittenWhenAbandonFails(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	rdb := rs.NewClient(t)
	rdb.AddHook(failScript{sha: endConfirmScript.Hash()})
	lease := 300 * time.Millisecond
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, lease)
	ep := mustEpoch(t, s)
	const n = 10
	trs := make([]transition, n)
	tokens := make([]string, n)
	token := newToken()
	for i := range trs {
		trs[i] = transition{kind: kindRequest, id: fmt.Sprint("r-", i), to: string(payout.StatusSubmitted), ref: "tx", verified: true, since: ep}
		tokens[i] = token
	}
	if _, _, err := s.beginMany(ctx, trs, tokens); err != nil {
		t.Fatal(err)
	}
	oks := make([]bool, n)
	for i := range oks {
		oks[i] = i%2 == 0
	}
	if err := s.endAll(ctx, trs, tokens, oks); err == nil {
		t.Fatal("endAll succeeded although the abandon failed")
	}
	if got := rdb.Exists(ctx, s.doneKey(token)).Val(); got != 0 {
		t.Fatal("the batch's confirmation was written although abandoning its failed produces failed")
	}
	time.Sleep(lease + 50*time.Millisecond)
	for i, tr := range trs {
		if st, err := s.last(ctx, kindRequest, tr.id); err != nil || st != "" {
			t.Errorf("%s: confirmed %q (%v)", tr.id, st, err)
		}
		again := tr
		out, _, err := s.begin(ctx, again, fmt.Sprint("retry-", i))
		if err != nil || out != outcomeOK {
			t.Errorf("%s: a retry after the lease got %s (%v), want ok", tr.id, out, err)
		}
	}
}

// failScript fails every command (or pipeline) that runs one script. With
// no sha it fails every script sent on its own, and pipelines pass. While
// on is set, if on is given.
type failScript struct {
	sha string
	on  *atomic.Bool
}

func (h failScript) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h failScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.hit(cmd) {
			cmd.SetErr(errors.New("injected: redis refused the script"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (h failScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	if h.sha == "" {
		return next
	}
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if h.hit(c) {
				err := errors.New("injected: redis refused the script")
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}

func (h failScript) hit(cmd redis.Cmder) bool {
	if h.on != nil && !h.on.Load() {
		return false
	}
	args := cmd.Args()
	if cmd.Name() != "evalsha" && cmd.Name() != "eval" {
		return false
	}
	return h.sha == "" || len(args) > 1 && (args[1] == h.sha || strings.Contains(fmt.Sprint(args[1]), "finish(KEYS[n]"))
}

// A replayed begin (the client lost the answer and sent the call again, as
// go-redis does after a timeout or a broken connection) answers the same
// grant for the attempts the first run granted, so the caller learns every
// key its token holds; a key met twice in one call stays busy the second
// time.
func TestReplayedBeginAnswersTheSameGrant(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	// The other attempt's lease must outlast the first run on a loaded
	// box (at 200ms a first run that came a lease late found r2 free and
	// granted it), and run out before the replay.
	const otherLease = 3 * time.Second
	other := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, otherLease)
	ep := mustEpoch(t, s)
	tr := func(id string) transition {
		return transition{kind: kindRequest, id: id, to: string(payout.StatusPending), ref: "tx-" + id, verified: true, since: ep}
	}
	if err := rs.Client().Set(ctx, s.key(kindRequest, "r1"), formatStatusValue(statusValue{st: "SUBMITTED", tx: "tx-r1"}), 0).Err(); err != nil {
		t.Fatal(err)
	}
	otherAt := time.Now()
	if out, _, err := other.begin(ctx, tr("r2"), "webhook"); err != nil || out != outcomeOK {
		t.Fatal(out, err)
	}
	trs := []transition{tr("r1"), tr("r2"), tr("r1")}
	tokens := []string{"T", "T", "T"}
	outs, froms, err := s.beginMany(ctx, trs, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%v %q", outs, froms) != `[ok busy busy] ["SUBMITTED" "" "SUBMITTED"]` {
		t.Fatalf("first run: %v %q", outs, froms)
	}
	time.Sleep(time.Until(otherAt.Add(otherLease + 100*time.Millisecond))) // r2's other attempt runs out
	outs, froms, err = s.beginMany(ctx, trs, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%v %q", outs, froms) != `[ok ok busy] ["SUBMITTED" "" "SUBMITTED"]` {
		t.Fatalf("replayed run: %v %q, want r1 granted again (from SUBMITTED), r2 granted, r1's second copy busy", outs, froms)
	}
	// Both produced and confirmed by the one key: both read PENDING.
	if err := s.endAll(ctx, trs[:2], tokens[:2], []bool{true, true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		if st, err := s.last(ctx, kindRequest, id); err != nil || st != "PENDING" {
			t.Errorf("%s: %q %v", id, st, err)
		}
	}
}

// replayBegin runs the first pipeline holding a beginManyScript call twice,
// a pause apart, and answers the second run, as go-redis does when a
// pipeline's reply times out or its connection breaks after Redis ran it.
type replayBegin struct {
	done  *atomic.Bool
	pause time.Duration
}

func (h replayBegin) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h replayBegin) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h replayBegin) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		hit := false
		for _, c := range cmds {
			if c.Name() == "evalsha" && len(c.Args()) > 1 && c.Args()[1] == beginManyScript.Hash() {
				hit = true
			}
		}
		if !hit || !h.done.CompareAndSwap(false, true) {
			return next(ctx, cmds)
		}
		_ = next(ctx, cmds) // the answer is lost
		time.Sleep(h.pause)
		return next(ctx, cmds)
	}
}

// Two faults at once, on the poll's path: the answer of a batch's begin is
// lost and the call replayed, and in between another attempt on one of its
// keys ran out. Every key the batch's token holds must be produced (or
// abandoned) before the token's confirmation is written: none may read as
// emitted without its event on the topic.
func TestReplayedBeginThenBatchConfirmLosesNothing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rdb := f.redis.NewClient(t)
	rdb.AddHook(replayBegin{done: new(atomic.Bool), pause: 400 * time.Millisecond})
	e, _ := f.engine(func(c *Config) { c.Redis = rdb })
	ctx := context.Background()
	since := mustEpoch(t, e.statuses)
	for _, sc := range []*redis.Script{beginManyScript, beginScript, endConfirmScript, endScript} {
		if err := sc.Load(ctx, f.redis.Client()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// r2 is held by a webhook's attempt whose lease runs out between the
	// two runs: busy in the first, free in the replay.
	other := newStatusStore(f.redis.Client(), f.prefix, time.Hour, 200*time.Millisecond)
	if out, _, err := other.begin(ctx, transition{kind: kindRequest, id: "r2", to: string(payout.StatusPending), ref: "tx2",
		verified: true, since: since}, "webhook"); err != nil || out != outcomeOK {
		t.Fatal(out, err)
	}
	mk := func(id, tx string) *payout.StatusChange {
		return &payout.StatusChange{RequestID: id, TransactionID: payout.OptString(tx), Status: payout.StatusApproved,
			AmountInCents: 100, OriginAccountID: "acc", OccurredAt: f.clock.Now(), Source: payout.SourcePoll, Rail: wompiRail()}
	}
	if _, err := e.emitRequests(ctx, []*payout.StatusChange{mk("r1", "tx1"), mk("r2", "tx2")}, since); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, ev := range f.statusEvents() {
		got[ev.RequestID]++
	}
	for _, id := range []string{"r1", "r2"} {
		st, err := e.statuses.last(ctx, kindRequest, id)
		if err != nil {
			t.Fatal(err)
		}
		if st == string(payout.StatusApproved) && got[id] == 0 {
			t.Errorf("%s: APPROVED recorded as emitted, but no event on the topic (events: %v)", id, got)
		}
	}
	if got["r1"] != 1 || got["r2"] != 1 {
		t.Errorf("events per request: %v, want one each", got)
	}
}

// Two faults at once on the poll's path: of a page's attempts under one
// token, one produce fails and another is still in flight (past
// ProduceTimeout) when the rest are ended. The token's confirmation key
// must not be written then: it would make the one in flight read as
// emitted, so another replica could emit a later status before it lands,
// or, if it fails at last, its status would read as emitted without its
// event. The on-time attempts are ended key by key, and the late one keeps
// its key until it settles.
func TestPartEndedBatchConfirmsNoOther(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	other := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ep := mustEpoch(t, s)
	const token = "page"
	var trs []transition
	var tokens []string
	for _, id := range []string{"on-time", "failed", "late"} {
		trs = append(trs, transition{kind: kindRequest, id: id, to: string(payout.StatusPending), ref: "tx-" + id, verified: true, since: ep})
		tokens = append(tokens, token)
	}
	outs, _, err := s.beginMany(ctx, trs, tokens)
	if err != nil || fmt.Sprint(outs) != "[ok ok ok]" {
		t.Fatalf("begin: %v %v", outs, err)
	}
	if err := s.endGranted(ctx, len(trs), trs[:2], tokens[:2], []bool{true, false}); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().Exists(ctx, s.doneKey(token)).Val(); n != 0 {
		t.Error("the page's confirmation key was written with an attempt still in flight")
	}
	approved := func(id string) transition {
		return transition{kind: kindRequest, id: id, to: string(payout.StatusApproved), ref: "tx-" + id, final: true, verified: true, since: ep}
	}
	if out, _, err := other.begin(ctx, approved("late"), "other"); err != nil || out != outcomeBusy {
		t.Fatalf("APPROVED while the late PENDING is in flight: %s %v, want busy", out, err)
	}
	for id, want := range map[string]string{"on-time": "PENDING", "failed": "", "late": ""} {
		if st, err := s.last(ctx, kindRequest, id); err != nil || st != want {
			t.Errorf("%s: confirmed %q (%v), want %q", id, st, err, want)
		}
	}
	// The late produce fails at last: abandoned, never read as emitted.
	if err := s.endMany(ctx, trs[2:], tokens[2:], []bool{false}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.last(ctx, kindRequest, "late"); err != nil || st != "" {
		t.Errorf("late: confirmed %q (%v) after its produce failed", st, err)
	}
	// Every attempt of the page ended together: one confirmation key.
	trs2 := []transition{approved("on-time"), approved("failed")}
	tokens2 := []string{"page2", "page2"}
	if outs, _, err := s.beginMany(ctx, trs2, tokens2); err != nil || fmt.Sprint(outs) != "[ok ok]" {
		t.Fatalf("second page: %v %v", outs, err)
	}
	if err := s.endGranted(ctx, len(trs2), trs2, tokens2, []bool{true, true}); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().Exists(ctx, s.doneKey("page2")).Val(); n != 1 {
		t.Error("a page ended whole was not confirmed by its key")
	}
	for _, id := range []string{"on-time", "failed"} {
		if st, err := s.last(ctx, kindRequest, id); err != nil || st != "APPROVED" {
			t.Errorf("%s: confirmed %q (%v), want APPROVED", id, st, err)
		}
	}
}

// Two faults at once: Redis loses a page's keys while their events are
// being produced, and one produce fails; the page ends (its confirmation
// key written, the failed attempt's abandon finding no key) before a
// renewal sent earlier lands and writes the lost keys back. The failed
// attempt must not then read as confirmed by the page's key: its status
// would be refused forever, never emitted. Written back abandoned, it may
// be emitted again.
func TestLateWriteBackAfterBatchEndedIsAbandoned(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ep := mustEpoch(t, s)
	var trs []transition
	for _, id := range []string{"produced", "failed"} {
		trs = append(trs, transition{kind: kindRequest, id: id, to: string(payout.StatusApproved), ref: "tx-" + id, final: true, verified: true, since: ep})
	}
	tokens := []string{"T", "T"}
	if outs, _, err := s.beginMany(ctx, trs, tokens); err != nil || fmt.Sprint(outs) != "[ok ok]" {
		t.Fatalf("begin: %v %v", outs, err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.endGranted(ctx, len(trs), trs[:2], tokens[:2], []bool{true, false}); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().Exists(ctx, s.doneKey("T")).Val(); n != 1 {
		t.Fatal("the page's confirmation key was not written")
	}
	held, err := s.renew(ctx, trs, tokens, []string{"", ""}, true) // the late renewal
	if err != nil || held != 0 {
		t.Fatalf("late renewal: %d held (%v), want 0", held, err)
	}
	if st, err := s.last(ctx, kindRequest, "failed"); err != nil || st != "" {
		t.Fatalf("failed produce reads as confirmed %q (%v) after a late write-back", st, err)
	}
	// Abandoned, it names no confirmation key: the previous layout.
	if raw := rs.Client().Get(ctx, s.key(kindRequest, "failed")).Val(); strings.Contains(raw, "track:done:") {
		t.Errorf("abandoned write-back names a confirmation key: %q", raw)
	}
	for i, tr := range trs {
		// Abandoned: the same status may be emitted again (the same eventId).
		if out, _, err := s.begin(ctx, tr, fmt.Sprint("again-", i)); err != nil || out != outcomeOK {
			t.Errorf("%s: APPROVED again after the late write-back: %s %v, want ok", tr.id, out, err)
		}
	}
}

// Two faults after a Redis loss: a RETURNED (after a confirmed APPROVED) is
// being produced when Redis loses its data; its holder writes the key back
// (holding only the attempt, and APPROVED as the status before it), and
// then the produce fails and the attempt is abandoned, or its end never
// lands and its lease runs out. RETURNED follows
// APPROVED only: a retry must still start from APPROVED, not from the
// empty confirmed status, or it would be refused until the key expires.
func TestReturnedAfterLossAndFailedProduce(t *testing.T) {
	for _, abandoned := range []bool{true, false} {
		// Abandoned: the produce failed and was ended; otherwise its end
		// never landed (a crash, the client's close) and the lease ran out.
		t.Run(map[bool]string{true: "abandoned", false: "lease ran out"}[abandoned], func(t *testing.T) {
			testReturnedAfterLoss(t, abandoned)
		})
	}
}

func testReturnedAfterLoss(t *testing.T, abandoned bool) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	const lease = 300 * time.Millisecond
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, lease)
	ep := mustEpoch(t, s)
	key := s.key(kindRequest, "r")
	if err := rs.Client().Set(ctx, key, formatStatusValue(statusValue{st: "APPROVED", tx: "tx"}), 0).Err(); err != nil {
		t.Fatal(err)
	}
	returned := transition{kind: kindRequest, id: "r", to: string(payout.StatusReturned), ref: "tx", final: true, verified: true, since: ep}
	out, from, err := s.begin(ctx, returned, "ret")
	if err != nil || out != outcomeOK || from != "APPROVED" {
		t.Fatalf("RETURNED: %s %q %v", out, from, err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if held, err := s.renew(ctx, []transition{returned}, []string{"ret"}, []string{from}, false); err != nil || held != 1 {
		t.Fatalf("write-back: %d %v", held, err)
	}
	if abandoned {
		if err := s.end(ctx, returned, "ret", false); err != nil { // the produce failed
			t.Fatal(err)
		}
	} else {
		time.Sleep(lease + 100*time.Millisecond)
	}
	out, from, err = s.begin(ctx, returned, "ret-2")
	if err != nil || out != outcomeOK || from != "APPROVED" {
		t.Fatalf("RETURNED again: %s %q %v, want ok from APPROVED", out, from, err)
	}
}

// On a Redis Cluster (one call per key) a holder's renewal sends its calls
// in one pipeline: one at a time, a large page's last keys would not be
// reached within the renewal's slot.
func TestRenewalIsOnePipeline(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	rdb := rs.NewClient(t)
	var pipes, singles atomic.Int64
	rdb.AddHook(countRoundTrips{&pipes, &singles})
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	s.chunk = 1
	ep := mustEpoch(t, s)
	const n = 50
	trs := make([]transition, n)
	tokens := make([]string, n)
	froms := make([]string, n)
	for i := range trs {
		trs[i] = transition{kind: kindRequest, id: fmt.Sprint("r-", i), to: string(payout.StatusSubmitted), ref: "tx", verified: true, since: ep}
		tokens[i] = fmt.Sprint("t-", i)
	}
	if _, _, err := s.beginMany(ctx, trs, tokens); err != nil {
		t.Fatal(err)
	}
	if err := renewScript.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	pipes.Store(0)
	singles.Store(0)
	held, err := s.renew(ctx, trs, tokens, froms, true)
	if err != nil || held != n {
		t.Fatalf("renewed %d of %d: %v", held, n, err)
	}
	if p, one := pipes.Load(), singles.Load(); p != 1 || one != 0 {
		t.Errorf("renewal of %d keys, one call each: %d pipelines and %d single calls, want 1 and 0", n, p, one)
	}
}

// countRoundTrips counts pipelines and single commands sent.
type countRoundTrips struct{ pipes, singles *atomic.Int64 }

func (h countRoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countRoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.singles.Add(1)
		return next(ctx, cmd)
	}
}

func (h countRoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipes.Add(1)
		return next(ctx, cmds)
	}
}

// The operator's read of a status key (payoutsctl) reads the key again
// after its batch's confirmation key: an attempt abandoned in between is
// shown abandoned, not confirmed.
func TestReadStatusKeyRereadsAfterConfirmation(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	rdb := rs.NewClient(t)
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	key := s.key(kindRequest, "r")
	live := statusValue{fl: "APPROVED", flt: "T", fle: fmt.Sprint(time.Now().Add(time.Hour).UnixMilli()), flx: "tx", flc: s.doneKey("T")}
	abandoned := statusValue{fl: "APPROVED", flt: "T", fle: "0", flx: "tx"}
	if err := rdb.Set(ctx, key, formatStatusValue(live), 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Between the key's read and the confirmation key's, the batch ends:
	// this attempt abandoned, the others confirmed.
	var once atomic.Bool
	rdb.AddHook(beforeExists{func() {
		if once.CompareAndSwap(false, true) {
			rs.Client().Set(ctx, key, formatStatusValue(abandoned), 0)
			rs.Client().Set(ctx, s.doneKey("T"), "1", 0)
		}
	}})
	v, err := readStatusKey(ctx, rdb, key)
	if err != nil || v.st != "" || v.fle != "0" {
		t.Fatalf("read %+v (%v), want the abandoned attempt", v, err)
	}
}

// beforeExists runs f before every EXISTS command.
type beforeExists struct{ f func() }

func (h beforeExists) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h beforeExists) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "exists" {
			h.f()
		}
		return next(ctx, cmd)
	}
}

func (h beforeExists) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A status key whose lengths run past its end is refused by the scripts as
// by the Go reader, never read truncated.
func TestScriptsRefuseShortStatusKey(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ep := mustEpoch(t, s)
	for i, bad := range []string{"SUBMITTED|||||9|tx", "SUBMITTED|||||c40|2|tx"} {
		id := fmt.Sprint("short-", i)
		if err := rs.Client().Set(ctx, s.key(kindRequest, id), bad, 0).Err(); err != nil {
			t.Fatal(err)
		}
		tr := transition{kind: kindRequest, id: id, to: string(payout.StatusPending), ref: "tx", verified: true, since: ep}
		if _, _, err := s.begin(ctx, tr, "t"); err == nil || !strings.Contains(err.Error(), "unreadable") {
			t.Errorf("%q: begin answered %v, want unreadable", bad, err)
		}
		if _, err := parseStatusValue(bad); err == nil {
			t.Errorf("%q: parsed", bad)
		}
	}
}
