package ratelimit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A negative daily limit is a setting to fix, not a limit: Reserve and Move
// refuse it with ErrInvalid, before anything is counted, rather than answer
// a denial that would defer the account's batches for a day as if its
// budget were used up.
func TestNegativeAccountLimitIsRefused(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b, err := ratelimit.NewBudget(rs.Client(), ratelimit.BudgetConfig{
		Prefix:            rs.Prefix(),
		DailyBatchCap:     3,
		AccountDailyLimit: func(string) int64 { return -1 },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{day, tomorrow} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	if g, err := b.Reserve(ctx, *res("b", acctA, day, 100)); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("reserve under a negative limit: %+v %v, want ErrInvalid", g, err)
	}
	if g, err := b.Move(ctx, *res("b", acctA, day, 100), tomorrow, tomorrow); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("move under a negative limit: %+v %v, want ErrInvalid", g, err)
	}
	for _, d := range []string{day, tomorrow} {
		if u := usage(t, b, d, acctA); u.AmountInCents != 0 || u.Batches != 0 {
			t.Fatalf("day %s after refused calls: %+v, want nothing counted", d, u)
		}
	}
}

// A release gives back at most what the account's counter holds: a counter
// that holds less than the reservation's record (written down out of band,
// e.g. by hand after an incident) goes to zero, never below, or the
// account would be granted more than its daily limit afterwards. The
// package's own calls keep the counter and the record in one hash, so only
// such a write can get here; the slot day's twin is
// TestReleaseNeverTakesALostSlotDayBelowZero.
func TestReleaseNeverTakesAnAmountBelowZero(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 10, 1000)
	_, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0)
	mustSeed(t, err)
	if g, err := b.Reserve(ctx, *res("b", acctA, day, 100)); err != nil || !g.Granted {
		t.Fatalf("reserve: %+v %v", g, err)
	}
	if err := rs.Client().HSet(ctx, b.Key(day), "amt:"+acctA, 40).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Release(ctx, *res("b", acctA, day, 100)); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if u := usage(t, b, day, acctA); u.AmountInCents != 0 {
		t.Fatalf("amount after the release: %+v, want 0", u)
	}
	if g, err := b.Reserve(ctx, *res("full", acctA, day, 1000)); err != nil || !g.Granted {
		t.Fatalf("a batch of the whole limit: %+v %v", g, err)
	}
	if g, err := b.Reserve(ctx, *res("over", acctA, day, 1)); err != nil || g.Denied != ratelimit.DeniedAmount {
		t.Fatalf("one cent past the limit: %+v %v, want denied by amount", g, err)
	}
}
