package track

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// slotsOf returns the sorted slot ranges the master at addr serves, as
// CLUSTER SLOTS answers them.
func slotsOf(t *testing.T, cl *redis.ClusterClient, addr string) []redis.ClusterSlot {
	t.Helper()
	ranges, err := cl.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var rs []redis.ClusterSlot
	for _, r := range ranges {
		if len(r.Nodes) > 0 && r.Nodes[0].Addr == addr {
			rs = append(rs, r)
		}
	}
	return rs
}

// Two things together on a Redis Cluster, neither a loss: a dispatcher job
// for a payee that waited (DEFERRED) takes Epoch and posts, and meanwhile
// an operator moves slots to the master of the payee's status key from the
// masters on either side of it (redis-cli --cluster reshard --cluster-from
// <low>,<high> --cluster-to <it>, or a rebalance that makes it a target:
// each source gives its lowest slots, the low one's below the master's
// first slot, the high one's above its last). Another job of the same
// dispatcher takes Epoch after the move (one gate per dispatcher): the
// gate's canary keys are computed again, and the master's first, middle
// and last slots are all new (two of them canaries of the other masters,
// moved with their slots, one written anew). No token of the first job's
// since is among them, the master reads as flushed, and the gate skips the
// first job's SUBMITTED for good while nothing was lost.
func TestGateSubmittedSurvivesSlotsAddedOnBothSidesOfItsMaster(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	g := NewGate(cl, rc.Prefix(), time.Minute)
	masterOfSlot := func(slot int) string {
		m, err := cl.MasterForKey(ctx, g.s.canaryKey(slot))
		if err != nil {
			t.Fatal(err)
		}
		return m.Options().Addr
	}
	low := masterOfSlot(0)
	mid := ""
	for _, a := range rc.Addrs() {
		if a != low && a != masterOfSlot(16383) {
			mid = a
		}
	}
	if mid == "" {
		t.Fatal("no master between the first and the last slot")
	}
	rs := slotsOf(t, cl, mid)
	last := rs[len(rs)-1].End
	high := masterOfSlot(last + 1)
	moved := []struct {
		slot     int
		from, to string
	}{{0, low, mid}, {1, low, mid}, {last + 1, high, mid}}
	id := ""
	for _, c := range []string{"r-1", "r-2", "r-3", "r-4", "r-5", "r-6", "r-7", "r-8", "r-9", "r-10", "r-11", "r-12"} {
		key := g.s.key(kindRequest, c)
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == mid {
			id = c
			break
		}
	}
	if id == "" {
		t.Fatal("no candidate status key on the middle master")
	}
	emit := func(since, to string) GateVerdict {
		tk, err := g.Begin(ctx, since, []GateItem{{ID: id, To: to, Ref: "tx-1"}})
		if err != nil {
			t.Fatal(err)
		}
		if tk.Verdicts[0] == GateOurs {
			if err := g.End(ctx, tk, true); err != nil {
				t.Fatal(err)
			}
		}
		return tk.Verdicts[0]
	}
	waited, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := emit(waited, string(payout.StatusDeferred)); v != GateOurs {
		t.Fatalf("DEFERRED: verdict %d, want ours", v)
	}
	since, err := g.Epoch(ctx) // the job, before its POST
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range moved {
		if err := rc.MoveSlot(ctx, m.slot, m.to); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := rc.MoveSlot(context.Background(), m.slot, m.from); err != nil {
				t.Errorf("moving slot %d back: %v", m.slot, err)
			}
		})
	}
	// The client catches up with the move (on a MOVED, or 10 s on).
	for deadline := time.Now().Add(10 * time.Second); ; {
		cl.ReloadState(ctx)
		done := true
		for _, m := range moved {
			done = done && masterOfSlot(m.slot) == mid
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client does not see the moved slots on their new master")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := g.Epoch(ctx); err != nil { // another job of the dispatcher
		t.Fatal(err)
	}
	if v := emit(since, string(payout.StatusSubmitted)); v != GateOurs {
		t.Fatalf("SUBMITTED over DEFERRED (slots moved to its master, nothing lost): verdict %d, want ours: the SUBMITTED is never emitted", v)
	}
}
