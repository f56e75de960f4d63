package track

// Faults paired in time with beginFresh's clock read and its writes (the
// dispatcher's new status keys written from the client): each sequence
// ends as it did when a script wrote them.

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// afterTime runs f once, right after the first TIME command the client
// sends is answered (beginFresh's clock read), before anything else.
type afterTime struct {
	armed *atomic.Bool
	f     func(ctx context.Context)
}

func (h afterTime) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h afterTime) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "time" && h.armed.CompareAndSwap(true, false) {
			h.f(ctx)
		}
		return err
	}
}
func (h afterTime) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// beforePipe runs f once before the first pipeline made of SETs (beginFresh's writes),
// or, with script, before the first pipeline holding a beginManyScript call.
type beforePipe struct {
	armed  *atomic.Bool
	script bool
	f      func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error
}

func (h beforePipe) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h beforePipe) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h beforePipe) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		hit := false
		if len(cmds) > 0 {
			if h.script {
				for _, c := range cmds {
					if c.Name() == "evalsha" && len(c.Args()) > 1 && c.Args()[1] == beginManyScript.Hash() {
						hit = true
					}
				}
			} else {
				hit = cmds[0].Name() == "set"
			}
		}
		if !hit || !h.armed.CompareAndSwap(true, false) {
			return next(ctx, cmds)
		}
		return h.f(ctx, cmds, next)
	}
}

func pauseWrites(t *testing.T, rdb *redis.Client, d time.Duration) {
	t.Helper()
	if err := rdb.Do(context.Background(), "client", "pause", d.Milliseconds(), "write").Err(); err != nil {
		t.Errorf("client pause: %v", err)
	}
}

// Pair: Redis pauses writes (CLIENT PAUSE WRITE: a FAILOVER,
// a managed service's maintenance or scaling step) right after it answered
// beginFresh's TIME, and a webhook's APPROVED for the same request is
// waiting behind the pause. TIME is not a write, so it is answered; the SETs
// wait out the pause and land with a lease measured from before it: longer
// pause than lease -> the SUBMITTED attempt is written already expired. The
// gate answers Ours, yet the very next begin on the key (the webhook's
// APPROVED) is granted too, before the holder's first renewal: APPROVED and
// SUBMITTED are produced concurrently, SUBMITTED may follow APPROVED on the
// topic, had the gate not renewed at once the keys whose writes landed
// late (freshLag). The script takes the clock inside, after the pause (the
// control below), so the key is held for a full lease.
func TestFreshWriteLandingLateIsRenewed(t *testing.T) {
	lateLanding(t, false)
}

// The control, the script path: the same pause lined up before the
// begin script; the script reads Redis's clock when it runs, after the pause,
// and the key is held for a full lease.
func TestScriptWriteKeepsItsLeaseAcrossAPause(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	const lease, pause = time.Second, 1500 * time.Millisecond
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	armed := new(atomic.Bool)
	rdb.AddHook(beforePipe{armed: armed, script: true, f: func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
		pauseWrites(t, rs.Client(), pause)
		return next(ctx, cmds)
	}})
	s := newStatusStore(rdb, rs.Prefix(), DefaultStatusTTL, lease)
	tracker := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	since := mustEpoch(t, s)
	mustEpoch(t, tracker)
	if err := beginManyScript.Load(ctx, rs.Client()).Err(); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	tr := transition{kind: kindRequest, id: "r-s", to: string(payout.StatusSubmitted), ref: "tx-s", verified: true, since: since, fresh: true}
	outs, _, err := s.beginScripted(ctx, []transition{tr, {kind: kindRequest, id: "r-s2", to: tr.to, ref: "x", verified: true,
		since: since, fresh: true}}, []string{"gate", "gate"})
	if err != nil || outs[0] != outcomeOK {
		t.Fatalf("%v %v", outs, err)
	}
	if armed.Load() {
		t.Fatal("the pause was not lined up")
	}
	approved := transition{kind: kindRequest, id: "r-s", to: string(payout.StatusApproved), ref: "tx-s", final: true,
		verified: true, since: since}
	if out, _, err := tracker.begin(ctx, approved, "webhook"); err != nil || out != outcomeBusy {
		t.Fatalf("APPROVED after the script's SUBMITTED: %s %v, want busy", out, err)
	}
}

// Pair: the SET pipeline's answer is lost after only some SETs were
// applied (the connection broke mid-pipeline) and go-redis re-sends all of
// them. The applied ones fail NX on the re-send and go to the script, which
// answers them as the same attempt (same token): every key the token holds
// is granted, so endAll's confirmation key confirms nothing unknown.
func TestFreshWritesResentGrantAll(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	armed := new(atomic.Bool)
	rdb.AddHook(beforePipe{armed: armed, f: func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
		_ = next(ctx, cmds[:2]) // two applied, the answer lost
		return next(ctx, cmds)  // re-sent whole
	}})
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	since := mustEpoch(t, s)
	var trs []transition
	var toks []string
	for _, id := range []string{"a", "b", "c", "d"} {
		trs = append(trs, transition{kind: kindRequest, id: id, to: string(payout.StatusSubmitted), ref: "tx-" + id,
			verified: true, since: since, fresh: true})
		toks = append(toks, "T")
	}
	armed.Store(true)
	outs, froms, err := s.beginMany(ctx, trs, toks)
	if err != nil {
		t.Fatal(err)
	}
	if armed.Load() {
		t.Fatal("the SET pipeline was not split and re-sent")
	}
	for i := range trs {
		if outs[i] != outcomeOK || froms[i] != "" {
			t.Fatalf("%s after a partial, re-sent pipeline: %s %q, want ok after nothing", trs[i].id, outs[i], froms[i])
		}
	}
	if err := s.endAll(ctx, trs, toks, []bool{true, false, true, true}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"SUBMITTED", "", "SUBMITTED", "SUBMITTED"} {
		if st, err := s.last(ctx, kindRequest, trs[i].id); err != nil || st != want {
			t.Fatalf("%s: %q %v, want %q", trs[i].id, st, err, want)
		}
	}
}

// Pair: Redis loses its data (FLUSHALL) after answering TIME and
// before the SETs. The SETs land on empty keys, but checkEpoch (still run
// after them) finds the marker gone, and the statuses read before the loss
// come back Skip (read again); their keys are released, nothing stays held.
func TestFreshWriteAfterALossIsNotOurs(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	armed := new(atomic.Bool)
	rdb.AddHook(afterTime{armed: armed, f: func(ctx context.Context) {
		if err := rs.Client().FlushAll(ctx).Err(); err != nil {
			t.Error(err)
		}
	}})
	g := NewGate(rdb, rs.Prefix(), 10*time.Second)
	g.SetLossGrace(2 * time.Second)
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	items := []GateItem{{ID: "f1", To: string(payout.StatusSubmitted), Ref: "t1"},
		{ID: "f2", To: string(payout.StatusApproved), Ref: "t2"},
		{Batch: true, ID: "b1", To: string(payout.BatchPending), Ref: "p1"}}
	tk, err := g.Begin(ctx, since, items)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Leave(tk)
	if armed.Load() {
		t.Fatal("no TIME read")
	}
	for i, v := range tk.Verdicts {
		if v == GateOurs {
			t.Fatalf("%s after a loss between TIME and SET: ours", items[i].ID)
		}
	}
	for _, k := range []string{g.s.key(kindRequest, "f1"), g.s.key(kindRequest, "f2"), g.s.key(kindBatch, "b1")} {
		if n := rs.Client().Exists(ctx, k).Val(); n != 0 {
			t.Fatalf("%s still written after the release", k)
		}
	}
}

// Pair: the loss grace's new marker is written and cached
// by another goroutine after beginFresh's TIME was answered but before it
// reads graceWindow: TIME predates the marker, so the grace check passes and
// the SETs are written within the grace (the script would refuse them: its
// clock runs after the marker is known). checkEpoch catches the young
// marker: busy,
// key released, so the holders' write-back at their next renewal is not
// blocked for long.
func TestFreshWriteWithinAGraceSeenLateIsReleased(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	armed := new(atomic.Bool)
	var s *statusStore
	rdb.AddHook(afterTime{armed: armed, f: func(ctx context.Context) {
		time.Sleep(5 * time.Millisecond) // the marker is dated after TIME
		if err := rs.Client().FlushAll(ctx).Err(); err != nil {
			t.Error(err)
		}
		if _, _, err := s.currentEpochAt(ctx); err != nil { // another goroutine's checkEpoch
			t.Error(err)
		}
	}})
	s = newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second).withLossGrace(2 * time.Second)
	since := mustEpoch(t, s)
	if err := rs.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	tr := transition{kind: kindRequest, id: "g1", to: string(payout.StatusApproved), ref: "t", final: true, verified: true,
		since: since, fresh: true}
	outs, _, err := s.beginMany(ctx, []transition{tr}, []string{"T"})
	if err != nil {
		t.Fatal(err)
	}
	if armed.Load() || commandCalls(t, rs)["set"] != 2 { // the new marker's SET (in its script) and the key's
		t.Fatalf("the pair did not line up (hook armed %v, SETs %d)", armed.Load(), commandCalls(t, rs)["set"])
	}
	if outs[0] != outcomeBusy {
		t.Fatalf("within the grace: %s, want busy", outs[0])
	}
	if n := rs.Client().Exists(ctx, s.key(kindRequest, "g1")).Val(); n != 0 {
		t.Fatal("key left written within the grace")
	}
}

// Pair: one call names a key twice (distinctTokens: T and T#1), and
// the SET pipeline is answered late and re-sent. The first copy is granted
// (same attempt on the replay), the second is busy behind it; the copy's
// token holds nothing, so the confirmation key of T confirms only the first.
func TestFreshWriteTwiceInACallResent(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	armed := new(atomic.Bool)
	rdb.AddHook(beforePipe{armed: armed, f: func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
		_ = next(ctx, cmds)
		return next(ctx, cmds)
	}})
	s := newStatusStore(rdb, rs.Prefix(), time.Hour, 10*time.Second)
	since := mustEpoch(t, s)
	sub := transition{kind: kindRequest, id: "d", to: string(payout.StatusSubmitted), ref: "tx", verified: true, since: since, fresh: true}
	pend := sub
	pend.to, pend.via = string(payout.StatusPending), string(payout.StatusSubmitted)
	trs := []transition{sub, pend}
	toks := []string{"T", "T"}
	armed.Store(true)
	outs, _, err := s.beginMany(ctx, trs, toks)
	if err != nil {
		t.Fatal(err)
	}
	if armed.Load() {
		t.Fatal("the SET pipeline was not re-sent")
	}
	if outs[0] != outcomeOK || outs[1] != outcomeBusy || toks[1] == toks[0] {
		t.Fatalf("%v %q, want [ok busy] with distinct tokens", outs, toks)
	}
	if err := s.endAll(ctx, trs[:1], toks[:1], []bool{true}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.last(ctx, kindRequest, "d"); err != nil || st != sub.to {
		t.Fatalf("%q %v", st, err)
	}
}

// Pair: the same pause, and a webhook's APPROVED for the request that
// reaches Redis during it, behind the gate's writes. The writes land with
// their lease already run out, the APPROVED is granted over them, and the
// gate's immediate renewal finds the key no longer its own: SUBMITTED is
// answered busy, never Ours, so it is not produced beside the APPROVED.
func TestFreshWriteLandingLateAfterATakeoverIsBusy(t *testing.T) {
	lateLanding(t, true)
}

// lateLanding lines up a pause of Redis's writes longer than the gate's
// lease right after beginFresh read Redis's clock, then a webhook's
// APPROVED on the same request: after the gate's Begin (its SUBMITTED must
// be Ours and hold the key), or, with during, sent during the pause behind
// the gate's writes (it takes the key; SUBMITTED must not be Ours).
func lateLanding(t *testing.T, during bool) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	const lease, pause = time.Second, 1500 * time.Millisecond
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	tracker := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	g := NewGate(rdb, rs.Prefix(), lease)
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustEpoch(t, tracker)
	// The begin script is loaded before the pause: a webhook whose EVALSHA
	// met NOSCRIPT once the pause ended would take two more round trips,
	// could come after the gate's renewal, and the pair would not line up.
	warm := transition{kind: kindRequest, id: "r-warm", to: string(payout.StatusSubmitted), ref: "tx-w", verified: true, since: since}
	if _, _, err := tracker.begin(ctx, warm, "warm"); err != nil {
		t.Fatal(err)
	}
	approved := transition{kind: kindRequest, id: "r-p", to: string(payout.StatusApproved), ref: "tx-p", final: true,
		verified: true, since: since}
	webhook := make(chan outcome, 1)
	armed := new(atomic.Bool)
	rdb.AddHook(afterTime{armed: armed, f: func(context.Context) {
		pauseWrites(t, rs.Client(), pause)
		if !during {
			return
		}
		go func() {
			time.Sleep(pause / 3) // after the gate's writes are held by the pause
			out, _, err := tracker.begin(ctx, approved, "webhook")
			if err != nil {
				t.Error(err)
			}
			webhook <- out
		}()
	}})
	armed.Store(true)
	tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-p", To: string(payout.StatusSubmitted), Ref: "tx-p"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Leave(tk)
	if armed.Load() {
		t.Fatal("no TIME was read: the fresh path did not run")
	}
	if during {
		if out := <-webhook; out != outcomeOK {
			t.Fatalf("the webhook's APPROVED over an expired lease: %s, want ok (the pair did not line up)", out)
		}
		if tk.Verdicts[0] == GateOurs {
			t.Fatal("SUBMITTED answered Ours over a key the webhook's APPROVED holds")
		}
		return
	}
	if tk.Verdicts[0] != GateOurs {
		t.Fatalf("SUBMITTED: verdict %v, want ours", tk.Verdicts[0])
	}
	// The holder's SUBMITTED is now being produced; its first renewal is
	// lease/4 away. A webhook's APPROVED must wait for it.
	out, _, err := tracker.begin(ctx, approved, "webhook")
	if err != nil {
		t.Fatal(err)
	}
	if out != outcomeBusy {
		v, _ := readStatusKey(ctx, rs.Client(), tracker.key(kindRequest, "r-p"))
		t.Fatalf("APPROVED while the gate's SUBMITTED is Ours and in flight: %s, want busy "+
			"(the SUBMITTED lease was written already expired: %+v)", out, v)
	}
}
