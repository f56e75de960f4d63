package ratelimit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A recovery notes what a single-payout rail listed as paid on the day
// before the loss. An account seeded later starts at that figure; one
// seeded before the note (a batch that reserved between the loss and the
// recovery) has the figure added to what it holds; a later, larger note
// adds only its increase; a smaller one changes nothing. Other rails and
// other days keep their own counters.
func TestNoteListedCountsAgainstEveryAccountOfTheRail(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b, err := ratelimit.NewBudget(rs.Client(), ratelimit.BudgetConfig{Prefix: rs.Prefix(),
		AccountDailyLimit: func(string) int64 { return 1000 }})
	if err != nil {
		t.Fatal(err)
	}
	sfp := rail.SmartFastPay
	// acctA reserved before the recovery noted anything.
	seedRail(t, b, sfp, day, acctA)
	if g, err := b.Reserve(ctx, onRail(sfp, res("a1", acctA, day, 100))); err != nil || !g.Granted {
		t.Fatalf("reserve before the note: %+v %v", g, err)
	}
	if n, err := b.NoteListed(ctx, sfp, day, 600); err != nil || n != 600 {
		t.Fatalf("note: %d %v", n, err)
	}
	if u := usageOn(t, b, sfp, day, acctA); u.AmountInCents != 700 {
		t.Fatalf("account seeded before the note holds %d, want 100 + 600", u.AmountInCents)
	}
	// acctB is seeded after it: it starts at the listed figure.
	seedRail(t, b, sfp, day, acctB)
	if u := usageOn(t, b, sfp, day, acctB); u.AmountInCents != 600 {
		t.Fatalf("account seeded after the note holds %d, want 600", u.AmountInCents)
	}
	if g, err := b.Reserve(ctx, onRail(sfp, res("b1", acctB, day, 401))); err != nil || g.Granted {
		t.Fatalf("401 cents over a listed 600 under a limit of 1000: %+v %v, want denied", g, err)
	}
	if g, err := b.Reserve(ctx, onRail(sfp, res("b1", acctB, day, 400))); err != nil || !g.Granted || g.UsedAmountInCents != 1000 {
		t.Fatalf("400 cents over a listed 600: %+v %v, want granted at 1000", g, err)
	}
	// A second recovery lists more: only the increase is added.
	if n, err := b.NoteListed(ctx, sfp, day, 650); err != nil || n != 650 {
		t.Fatalf("second note: %d %v", n, err)
	}
	if u := usageOn(t, b, sfp, day, acctA); u.AmountInCents != 750 {
		t.Fatalf("after a larger note acctA holds %d, want 750", u.AmountInCents)
	}
	if n, err := b.NoteListed(ctx, sfp, day, 10); err != nil || n != 650 {
		t.Fatalf("smaller note: %d %v, want the figure kept at 650", n, err)
	}
	if u := usageOn(t, b, sfp, day, acctA); u.AmountInCents != 750 {
		t.Fatalf("after a smaller note acctA holds %d, want 750", u.AmountInCents)
	}
	// A seed of a larger figure still wins.
	if u, err := b.SeedAmount(ctx, sfp, day, "acct-c", 900); err != nil || u.AmountInCents != 900 {
		t.Fatalf("seed above the listed figure: %+v %v", u, err)
	}
	// Neither another rail nor another day is touched.
	seedRail(t, b, rail.WEpayout, day, acctA)
	seedRail(t, b, "", day, acctA)
	seedRail(t, b, sfp, "2026-11-22", acctA)
	for _, c := range []struct {
		r rail.Name
		d string
	}{{rail.WEpayout, day}, {"", day}, {sfp, "2026-11-22"}} {
		if u := usageOn(t, b, c.r, c.d, acctA); u.AmountInCents != 0 {
			t.Fatalf("%q on %s holds %d, want 0", c.r, c.d, u.AmountInCents)
		}
	}
	if _, err := b.NoteListed(ctx, sfp, day, -1); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("negative note: %v", err)
	}
	if _, err := b.NoteListed(ctx, "nosuchrail", day, 1); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("unknown rail: %v", err)
	}
	// A day is listed once noted, even at 0; until then it is not.
	if _, ok, err := b.Listed(ctx, sfp, "2026-11-24"); err != nil || ok {
		t.Fatalf("a day never noted reads as listed: %v %v", ok, err)
	}
	if _, err := b.NoteListed(ctx, sfp, "2026-11-24", 0); err != nil {
		t.Fatal(err)
	}
	if cents, ok, err := b.Listed(ctx, sfp, "2026-11-24"); err != nil || !ok || cents != 0 {
		t.Fatalf("a day noted at 0: %d %v %v, want listed at 0", cents, ok, err)
	}
	if cents, ok, err := b.Listed(ctx, sfp, day); err != nil || !ok || cents != 650 {
		t.Fatalf("listed %d %v %v, want 650", cents, ok, err)
	}
	if _, ok, err := b.Listed(ctx, rail.WEpayout, day); err != nil || ok {
		t.Fatalf("another rail reads as listed: %v %v", ok, err)
	}
	// A figure above what Lua counts exactly is noted at the bound.
	if n, err := b.NoteListed(ctx, sfp, "2026-11-23", 1<<62); err != nil || n != ratelimit.MaxListedInCents {
		t.Fatalf("huge note: %d %v", n, err)
	}
}
