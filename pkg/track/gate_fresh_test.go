package track

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// commandCalls reads INFO commandstats: command -> calls.
func commandCalls(t *testing.T, rs *testenv.RedisServer) map[string]int {
	t.Helper()
	info, err := rs.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var n int
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				for _, c := range v {
					n = 10*n + int(c-'0')
				}
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// The dispatcher's statuses go to keys that hold none yet: each is written
// by one SET NX, without reading the key first, and reads afterwards as an
// attempt begun the usual way (the next status follows it once confirmed).
func TestGateWritesAFreshKeyInOneCall(t *testing.T) {
	rs := testenv.RedisOwn(t)
	g := NewGate(rs.Client(), rs.Prefix(), time.Minute)
	ctx := context.Background()
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items := []GateItem{
		{ID: "f-1", To: string(payout.StatusSubmitted), Ref: "tx-1"},
		{ID: "f-2", To: string(payout.StatusPending), Ref: "tx-2"},
		{Batch: true, ID: "b-1", To: string(payout.BatchPending), Ref: "p-1"},
	}
	if err := rs.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	tk, err := g.Begin(ctx, since, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tk.Verdicts {
		if v != GateOurs || tk.Previous[i] != "" {
			t.Fatalf("%s: verdict %v after %q, want ours after nothing", items[i].ID, v, tk.Previous[i])
		}
	}
	// One GET at most: the epoch marker's (checkEpoch), not the keys'.
	calls := commandCalls(t, rs)
	if calls["get"] > 1 || calls["set"] != len(items) {
		t.Fatalf("begin on fresh keys: %d GET and %d SET, want at most 1 (the marker) and %d", calls["get"], calls["set"], len(items))
	}
	for _, it := range items[:2] {
		v, err := readStatusKey(ctx, rs.Client(), rs.Prefix()+"track:req:{"+it.ID+"}")
		if err != nil || v.fl != it.To || v.flx != it.Ref || v.st != "" {
			t.Fatalf("%s after begin: %+v %v, want an attempt to %s", it.ID, v, err, it.To)
		}
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
	next, err := g.Begin(ctx, since, []GateItem{{ID: "f-1", To: string(payout.StatusApproved), Ref: "tx-1"},
		{ID: "f-2", To: string(payout.StatusPending), Ref: "tx-2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.End(ctx, next, false) }()
	if next.Verdicts[0] != GateOurs || next.Previous[0] != string(payout.StatusSubmitted) {
		t.Fatalf("APPROVED after a confirmed fresh SUBMITTED: %v after %q", next.Verdicts[0], next.Previous[0])
	}
	if next.Verdicts[1] != GateSkip {
		t.Fatalf("PENDING again after a confirmed fresh PENDING: %v, want skip", next.Verdicts[1])
	}
}

// A fresh key is not written with a status that cannot start a lifecycle,
// nor within the loss grace (nothing is emitted on a key holding no status
// until the holders of lost attempts wrote them back; the Go side's epoch
// check refuses it too).
func TestGateFreshKeyKeepsTheRules(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	g := NewGate(rs.Client(), rs.Prefix(), time.Minute)
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-ret", To: string(payout.StatusReturned), Ref: "tx-r"}})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Verdicts[0] == GateOurs {
		t.Fatal("RETURNED granted on a key holding no status (it follows APPROVED only)")
	}

	tracker := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second).withLossGrace(time.Minute)
	if _, err := tracker.epoch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil { // a loss
		t.Fatal(err)
	}
	if _, err := tracker.currentEpoch(ctx); err != nil { // the new marker: the grace starts
		t.Fatal(err)
	}
	after := NewGate(rs.Client(), rs.Prefix(), time.Minute) // a dispatcher starting after the loss
	after.SetLossGrace(time.Minute)
	since, err = after.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	tk, err = after.Begin(ctx, since, []GateItem{{ID: "r-grace", To: string(payout.StatusSubmitted), Ref: "tx-g"}})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Verdicts[0] != GateBusy {
		t.Fatalf("SUBMITTED on a key holding no status within the loss grace: %v, want busy", tk.Verdicts[0])
	}
	// Refused without a write (and a release to undo it).
	if calls := commandCalls(t, rs); calls["set"] != 0 || calls["del"] != 0 {
		t.Fatalf("begin within the grace wrote: %d SET, %d DEL", calls["set"], calls["del"])
	}
	for _, id := range []string{"r-ret", "r-grace"} {
		if n, err := rs.Client().Exists(ctx, rs.Prefix()+"track:req:{"+id+"}").Result(); err != nil || n != 0 {
			t.Fatalf("%s written: %d %v", id, n, err)
		}
	}
}
