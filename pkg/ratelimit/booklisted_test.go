package ratelimit_test

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// BookListed counts a listed batch whose reservation is gone as Reserve
// would have counted it (the amount on its amount day, a slot on its slot
// day), once; a batch whose reservation is there is left as it is, and a
// later Reserve of a booked batch finds it held.
func TestBookListedCountsAMissingReservationOnce(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 10, 1000)
	for _, d := range []string{day, tomorrow} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	if _, err := b.Reserve(ctx, *res("kept", acctA, day, 100)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r    ratelimit.Reservation
		want bool
	}{
		{*res("kept", acctA, day, 100), false},             // its reservation is there
		{*sched("lost", acctA, tomorrow, day, 300), true},  // gone with the last writes
		{*sched("lost", acctA, tomorrow, day, 300), false}, // booked already
	} {
		got, err := b.BookListed(ctx, c.r)
		if err != nil || got != c.want {
			t.Fatalf("BookListed(%s) = %v, %v; want %v", c.r.BatchID, got, err, c.want)
		}
	}
	u, err := b.Usage(ctx, rail.Wompi, tomorrow, acctA)
	if err != nil || u.AmountInCents != 300 {
		t.Fatalf("amount on the amount day: %+v %v, want 300", u, err)
	}
	u, err = b.Usage(ctx, rail.Wompi, day, acctA)
	if err != nil || u.AmountInCents != 100 || u.Batches != 2 {
		t.Fatalf("on the slot day: %+v %v, want 100 cents and 2 slots", u, err)
	}
	g, err := b.Reserve(ctx, *sched("lost", acctA, tomorrow, day, 300))
	if err != nil || !g.AlreadyHeld {
		t.Fatalf("a booked batch reserved again: %+v %v, want it held", g, err)
	}
}
