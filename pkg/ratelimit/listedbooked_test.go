package ratelimit_test

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// After a full Redis loss the recovery notes what Wompi listed without an
// account of ours (NoteListed: a batch made outside the pipeline, or one
// listed without its account) and then books each of Wompi's batches it
// can name (BookListed), both before any account of the day is seeded.
// The two are disjoint spend: the account's first seed must start at both
// (listed + booked), as an account seeded before the note does
// (TestNoteListedCountsAgainstEveryAccountOfTheRail), never at the larger
// of the two. Wompi publishes no figure for a day other than today (a
// scheduled batch's dispersion day): its seed is 0.
func TestSeedAfterLossCountsListedAndBookedBoth(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 10, 2000)
	// The recovery, in its order (noteListed, then bookWompi).
	if _, err := b.NoteListed(ctx, rail.Wompi, tomorrow, 800); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.BookListed(ctx, *sched("ours", acctA, tomorrow, day, 1000)); err != nil || !ok {
		t.Fatalf("book: %v %v", ok, err)
	}
	// The next batch of acctA for tomorrow: not seeded, Wompi's figure
	// for a later day is 0.
	if _, err := b.SeedAmount(ctx, rail.Wompi, tomorrow, acctA, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SeedBatches(ctx, rail.Wompi, day, 0); err != nil {
		t.Fatal(err)
	}
	if u := usage(t, b, tomorrow, acctA); u.AmountInCents != 1800 {
		t.Fatalf("acctA's amount on its day after the loss: %d, want 800 listed + 1000 booked", u.AmountInCents)
	}
	g, err := b.Reserve(ctx, *sched("next", acctA, tomorrow, day, 900))
	if err != nil {
		t.Fatal(err)
	}
	if g.Granted {
		t.Fatalf("900 cents granted over 800 listed + 1000 booked under a limit of 2000: %+v", g)
	}
}
