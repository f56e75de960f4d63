package ratelimit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A scheduled batch's slot day and amount day are two keys: when the slot
// day's alone is lost (an eviction) and seeded again from the rail's count,
// which leaves the unposted batch out, releasing the batch must not take
// the count below zero: that would be a slot past the cap.
func TestReleaseNeverTakesALostSlotDayBelowZero(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 1, 1000)
	for _, d := range []string{day, later} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	if g, err := b.Reserve(ctx, *sched("s", acctA, later, day, 100)); err != nil || !g.Granted {
		t.Fatalf("reserve: %+v %v", g, err)
	}
	if err := rs.Client().Del(ctx, b.Key(day)).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0) // the rail sent nothing that day
	mustSeed(t, err)
	if ok, err := b.Release(ctx, *sched("s", acctA, later, day, 100)); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if u := usage(t, b, day, acctA); u.Batches != 0 {
		t.Fatalf("slot day after the release: %+v, want 0 batches", u)
	}
	if g, err := b.Reserve(ctx, *res("i1", acctA, day, 1)); err != nil || !g.Granted {
		t.Fatalf("first batch of the day: %+v %v", g, err)
	}
	if g, err := b.Reserve(ctx, *res("i2", acctA, day, 1)); err != nil || g.Denied != ratelimit.DeniedBatchCount {
		t.Fatalf("second batch past a cap of 1: %+v %v, want denied by count", g, err)
	}
}

// A Move whose new amount day holds another reservation of the batch is a
// conflict, and changes nothing: taking it would count the batch twice and
// lose the record of the first reservation.
func TestMoveOntoADayHoldingAnotherReservationConflicts(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	for _, d := range []string{day, tomorrow} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	if _, err := b.Reserve(ctx, *res("b", acctA, tomorrow, 100)); err != nil {
		t.Fatal(err)
	}
	// From a day it does not hold, onto tomorrow with another slot day.
	if _, err := b.Move(ctx, *res("b", acctA, day, 100), tomorrow, day); !errors.Is(err, ratelimit.ErrReservationConflict) {
		t.Fatalf("move onto a day holding another reservation: %v, want a conflict", err)
	}
	if u := usage(t, b, tomorrow, acctA); u.AmountInCents != 100 || u.Batches != 1 {
		t.Fatalf("amount day after a refused move: %+v", u)
	}
	if u := usage(t, b, day, acctA); u.AmountInCents != 0 || u.Batches != 0 {
		t.Fatalf("other day after a refused move: %+v", u)
	}
}
