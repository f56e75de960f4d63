package ratelimit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A failover and then a failback to the very process the budgets were
// stamped with: its master A is cut off, keeps taking writes for a moment
// (a reservation, paid) while its replica B is promoted without them; once
// the partition heals A syncs from B (those writes are discarded) and is
// made master again (CLUSTER FAILOVER to restore the layout, SENTINEL
// FAILOVER back). No reservation reached B meanwhile. A has kept its run
// id, so the stamp naming it still matched: the budgets had lost the
// reservation paid during the partition, and the next one was granted
// past the account's daily limit.
func TestFailbackToTheStampedProcessIsNoticed(t *testing.T) {
	a, bsrv := testenv.RedisOwn(t), testenv.RedisOwn(t)
	ctx := context.Background()
	b := newBudget(t, a.Client(), a.Prefix(), 3, 1000)
	_, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0)
	mustSeed(t, err)
	server, err := b.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stamp(ctx, server); err != nil {
		t.Fatal(err)
	}
	if g, err := b.Reserve(ctx, *res("f1", acctA, day, 100)); err != nil || !g.Granted {
		t.Fatalf("first reservation: %+v %v", g, err)
	}
	// B replicates A, then is promoted (A cut off). A's first replica
	// gave A a new replication id, without a promotion: reservations go on,
	// and the process read before it still stamps.
	bsrv.ReplicaOf(t, a)
	if g, err := b.Reserve(ctx, *res("f1b", acctA, day, 50)); err != nil || !g.Granted {
		t.Fatalf("reservation after the first replica attached: %+v %v", g, err)
	}
	if err := b.Stamp(ctx, server); err != nil {
		t.Fatalf("stamp after the first replica attached: %v", err)
	}
	bsrv.Promote(t)
	// A, cut off, still takes this one: it is paid, and never reaches B.
	if g, err := b.Reserve(ctx, *res("f2", acctA, day, 600)); err != nil || !g.Granted {
		t.Fatalf("reservation during the partition: %+v %v", g, err)
	}
	// The partition heals: A syncs from B, then is made master again.
	a.ReplicaOf(t, bsrv)
	a.Promote(t)
	if ok, _ := b.Holds(ctx, *res("f2", acctA, day, 600)); ok {
		t.Fatal("the reservation made during the partition survived: the test lost its premise")
	}
	g, err := b.Reserve(ctx, *res("f3", acctA, day, 400))
	if err == nil && g.Granted {
		t.Fatalf("granted %+v: 1,150 cents paid on a day whose limit is 1,000 (the budgets lost f2 and the stamp did not notice)", g)
	}
	if !errors.Is(err, ratelimit.ErrServerChanged) {
		t.Fatalf("after the failback: %+v %v, want ErrServerChanged", g, err)
	}
	// Nor does a recovery that read the process before the failback stamp
	// the budgets with it: what it counted into them may be lost.
	if err := b.Stamp(ctx, server); !errors.Is(err, ratelimit.ErrServerChanged) {
		t.Fatalf("stamp with the process read before the failback: %v, want ErrServerChanged", err)
	}
	now, err := b.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stamp(ctx, now); err != nil {
		t.Fatalf("stamp with the process read after the failback: %v", err)
	}
	if g, err := b.Reserve(ctx, *res("f4", acctA, day, 100)); err != nil || !g.Granted {
		t.Fatalf("after the stamp: %+v %v", g, err)
	}
}
