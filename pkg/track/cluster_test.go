package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The tracker's Redis work on a three-master Redis Cluster, through
// REDIS_URL's cluster form: the status compare-and-set (begin and end,
// one by one and pipelined for many keys of many slots), the hand-off
// record and lookup, and the polling schedule's claims. A script or a
// pipeline that mixed slots would fail with CROSSSLOT.
func TestTrackerRedisOnCluster(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl, err := config.RedisClient(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ctx := context.Background()
	g := NewGate(cl, rc.Prefix(), time.Minute)
	var items []GateItem
	for _, id := range []string{"c-1", "c-2", "c-3", "c-4", "c-5", "c-6"} {
		items = append(items, GateItem{ID: id, To: string(payout.StatusSubmitted), Ref: "tx-" + id})
	}
	items = append(items, GateItem{Batch: true, ID: "b-1", To: string(payout.BatchPending), Ref: "p-1"})
	ep, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := g.Begin(ctx, ep, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tk.Verdicts {
		if v != GateOurs {
			t.Fatalf("item %d: verdict %v", i, v)
		}
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
	// A later status wins; the same SUBMITTED again is skipped.
	tk, err = g.Begin(ctx, ep, []GateItem{{ID: "c-1", To: string(payout.StatusApproved), Ref: "tx-c-1"}, {ID: "c-2", To: string(payout.StatusSubmitted), Ref: "tx-c-2"}})
	if err != nil || tk.Verdicts[0] != GateOurs || tk.Verdicts[1] != GateSkip {
		t.Fatalf("second round: %+v %v", tk, err)
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}

	store := submitted.New(cl, rc.Prefix(), 0)
	now := time.Now()
	if err := store.Record(ctx, submitted.Payout{PayoutID: "p-1", BatchID: "b-1", OriginAccountID: "acc", TransactionCount: 2, SubmittedAt: now},
		[]submitted.Transaction{{TransactionID: "t-1", RequestID: "c-1", BatchID: "b-1", PayoutID: "p-1", AmountInCents: 100},
			{TransactionID: "t-2", RequestID: "c-2", BatchID: "b-1", PayoutID: "p-1", AmountInCents: 200}}, now); err != nil {
		t.Fatal(err)
	}
	m, ok, err := store.Lookup(ctx, "p-1", "t-2")
	if err != nil || !ok || m.RequestID != "c-2" {
		t.Fatalf("lookup: %+v %v %v", m, ok, err)
	}
	ids, err := store.ClaimDue(ctx, now.Add(time.Hour), time.Minute, 10)
	if err != nil || len(ids) != 1 || ids[0] != "p-1" {
		t.Fatalf("claim due: %v %v", ids, err)
	}
	// The rebuild's key and the ready marker share the schedule's slot.
	gen, err := store.BeginRebuild(ctx, "rebuild-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if marked, err := store.MarkReadyAfter(ctx, gen); err != nil || !marked {
		t.Fatalf("mark ready after a rebuild: %v %v", marked, err)
	}
	if ready, err := store.Ready(ctx); err != nil || !ready {
		t.Fatalf("ready: %v %v", ready, err)
	}
}
