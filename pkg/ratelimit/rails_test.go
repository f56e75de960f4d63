package ratelimit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

func onRail(r rail.Name, x *ratelimit.Reservation) ratelimit.Reservation {
	x.Rail = r
	return *x
}

func seedRail(t *testing.T, b *ratelimit.Budget, r rail.Name, d, acct string) {
	t.Helper()
	_, err := b.Seed(context.Background(), r, d, acct, 0, 0)
	mustSeed(t, err)
}

func usageOn(t *testing.T, b *ratelimit.Budget, r rail.Name, d, acct string) ratelimit.Usage {
	t.Helper()
	u, err := b.Usage(context.Background(), r, d, acct)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Two rails' reservations for the same account id and day share neither the
// amount nor the batch count: each rail's limit and cap are its own. Wompi
// keeps its fields from before rails; a release finds the rail in the
// batch's record.
func TestBudgetRailsDoNotShareAmountOrCount(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b, err := ratelimit.NewBudget(rs.Client(), ratelimit.BudgetConfig{Prefix: rs.Prefix(), DailyBatchCap: 1,
		BatchCaps:         map[rail.Name]int{rail.SmartFastPay: 1},
		AccountDailyLimit: func(string) int64 { return 1000 }})
	if err != nil {
		t.Fatal(err)
	}
	// Seeding Wompi's day seeds nothing of another rail.
	seedRail(t, b, "", day, acctA)
	_, err = b.Reserve(ctx, onRail(rail.SmartFastPay, res("s1", acctA, day, 1000)))
	var ns *ratelimit.NotSeededError
	if !errors.As(err, &ns) || *ns != (ratelimit.NotSeededError{Rail: rail.SmartFastPay, AccountID: acctA, AmountDay: day, SlotDay: day}) {
		t.Fatalf("smartfastpay with only wompi seeded: %v", err)
	}
	seedRail(t, b, rail.SmartFastPay, day, acctA)

	// The whole limit and the whole cap on each rail.
	if g, err := b.Reserve(ctx, *res("w1", acctA, day, 1000)); err != nil || g != (ratelimit.Grant{Granted: true,
		UsedAmountInCents: 1000, UsedBatches: 1, AccountLimitInCents: 1000, BatchCap: 1}) {
		t.Fatalf("wompi: %+v %v", g, err)
	}
	if g, err := b.Reserve(ctx, onRail(rail.SmartFastPay, res("s1", acctA, day, 1000))); err != nil || g != (ratelimit.Grant{Granted: true,
		UsedAmountInCents: 1000, UsedBatches: 1, AccountLimitInCents: 1000, BatchCap: 1}) {
		t.Fatalf("smartfastpay after wompi used its limit and cap: %+v %v", g, err)
	}
	// Each rail is full on its own.
	if g, err := b.Reserve(ctx, onRail(rail.Wompi, res("w2", acctA, day, 1))); err != nil || g.Denied != ratelimit.DeniedBatchCount {
		t.Fatalf("wompi's second batch: %+v %v", g, err)
	}
	if g, err := b.Reserve(ctx, onRail(rail.SmartFastPay, res("s2", acctA, day, 1))); err != nil || g.Denied != ratelimit.DeniedBatchCount {
		t.Fatalf("smartfastpay's second batch: %+v %v", g, err)
	}
	// A batch id holds one reservation, whatever the rail.
	if _, err := b.Reserve(ctx, onRail(rail.SmartFastPay, res("w1", acctA, day, 1000))); !errors.Is(err, ratelimit.ErrReservationConflict) {
		t.Fatalf("w1 again through another rail: %v", err)
	}

	want := ratelimit.Usage{Seeded: true, BatchesSeeded: true, AmountInCents: 1000, Batches: 1}
	for _, r := range []rail.Name{"", rail.Wompi, rail.SmartFastPay} {
		if u := usageOn(t, b, r, day, acctA); u != want {
			t.Fatalf("usage of %q: %+v, want %+v", r, u, want)
		}
	}
	if u := usageOn(t, b, rail.WEpayout, day, acctA); u != (ratelimit.Usage{}) {
		t.Fatalf("usage of wepayout: %+v", u)
	}

	// The hash holds Wompi's fields under their names from before rails,
	// the other rail's under its prefix.
	h, err := rs.Client().HGetAll(ctx, b.Key(day)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{
		"amt:" + acctA: "1000", "batches": "1", "seeded:" + acctA: "1", "slots-seeded": "1",
		"smartfastpay/amt:" + acctA: "1000", "smartfastpay/batches": "1",
		"smartfastpay/seeded:" + acctA: "1", "smartfastpay/slots-seeded": "1",
		"res:w1": "1000:" + day + ":" + acctA, "res:s1": "smartfastpay/1000:" + day + ":" + acctA,
	} {
		if h[f] != v {
			t.Errorf("field %s = %q, want %q (hash %v)", f, h[f], v, h)
		}
	}

	// Release goes by the record: the rail named in the request (none
	// here) does not matter.
	if ok, err := b.Release(ctx, ratelimit.Reservation{BatchID: "s1", Day: day}); err != nil || !ok {
		t.Fatalf("release s1: %v %v", ok, err)
	}
	if u := usageOn(t, b, rail.SmartFastPay, day, acctA); u.AmountInCents != 0 || u.Batches != 0 {
		t.Fatalf("smartfastpay after release: %+v", u)
	}
	if u := usageOn(t, b, rail.Wompi, day, acctA); u != want {
		t.Fatalf("wompi after smartfastpay's release: %+v, want %+v", u, want)
	}
	if ok, err := b.Release(ctx, ratelimit.Reservation{BatchID: "w1", Rail: rail.SmartFastPay, Day: day}); err != nil || !ok {
		t.Fatalf("release w1: %v %v", ok, err)
	}
	if u := usageOn(t, b, rail.Wompi, day, acctA); u.AmountInCents != 0 || u.Batches != 0 {
		t.Fatalf("wompi after release: %+v", u)
	}
}

// A rail whose cap is 0 (or absent) is never denied for its batch count,
// and its count needs no seed; Wompi's cap and its seeding stay as they
// were; a rail's configured cap is its own.
func TestBudgetBatchCapsPerRail(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b, err := ratelimit.NewBudget(rs.Client(), ratelimit.BudgetConfig{Prefix: rs.Prefix(),
		BatchCaps: map[rail.Name]int{rail.SmartFastPay: 0, rail.WEpayout: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for r, want := range map[rail.Name]int{"": 3800, rail.Wompi: 3800, rail.SmartFastPay: 0, rail.WEpayout: 2} {
		if got := b.BatchCap(r); got != want {
			t.Errorf("BatchCap(%q) = %d, want %d", r, got, want)
		}
	}
	// SmartFastPay: with only the amount seeded, a batch goes through (its
	// count needs no seed); then past Wompi's 3,800.
	_, err = b.SeedAmount(ctx, rail.SmartFastPay, day, acctA, 0)
	mustSeed(t, err)
	if g, err := b.Reserve(ctx, onRail(rail.SmartFastPay, res("first", acctA, day, 1))); err != nil || !g.Granted || g.UsedBatches != 1 {
		t.Fatalf("smartfastpay with its count unseeded: %+v %v", g, err)
	}
	_, err = b.SeedBatches(ctx, rail.Wompi, day, 3799)
	mustSeed(t, err)
	_, err = b.SeedBatches(ctx, rail.SmartFastPay, day, 3799) // as many as Wompi's: no cap to reach
	mustSeed(t, err)
	for i := range 3 {
		g, err := b.Reserve(ctx, onRail(rail.SmartFastPay, res("s"+string(rune('0'+i)), acctA, day, 1)))
		if err != nil || !g.Granted || g.BatchCap != 0 || g.UsedBatches != 3800+i {
			t.Fatalf("smartfastpay batch %d: %+v %v", 3800+i, g, err)
		}
	}
	// Wompi: 3,800 as before.
	_, err = b.SeedAmount(ctx, rail.Wompi, day, acctA, 0)
	mustSeed(t, err)
	if g, err := b.Reserve(ctx, *res("w1", acctA, day, 1)); err != nil || !g.Granted || g.BatchCap != 3800 || g.UsedBatches != 3800 {
		t.Fatalf("wompi's 3,800th: %+v %v", g, err)
	}
	if g, err := b.Reserve(ctx, *res("w2", acctA, day, 1)); err != nil || g.Denied != ratelimit.DeniedBatchCount {
		t.Fatalf("wompi's 3,801st: %+v %v", g, err)
	}
	// WEpayout: capped at 2, and a capped rail's count must be seeded.
	_, err = b.SeedAmount(ctx, rail.WEpayout, day, acctA, 0)
	mustSeed(t, err)
	var ns *ratelimit.NotSeededError
	if _, err := b.Reserve(ctx, onRail(rail.WEpayout, res("p1", acctA, day, 1))); !errors.As(err, &ns) ||
		*ns != (ratelimit.NotSeededError{Rail: rail.WEpayout, AccountID: acctA, SlotDay: day}) {
		t.Fatalf("wepayout with its count unseeded: %v", err)
	}
	_, err = b.SeedBatches(ctx, rail.WEpayout, day, 0)
	mustSeed(t, err)
	for i, want := range []bool{true, true, false} {
		g, err := b.Reserve(ctx, onRail(rail.WEpayout, res("p"+string(rune('0'+i)), acctA, day, 1)))
		if err != nil || g.Granted != want || g.BatchCap != 2 {
			t.Fatalf("wepayout batch %d: %+v %v", i+1, g, err)
		}
	}
}

// Configuration and arguments that name no rail of the contract.
func TestBudgetRailValidation(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	for name, caps := range map[string]map[rail.Name]int{
		"wompi in BatchCaps": {rail.Wompi: 10},
		"empty rail":         {"": 10},
		"unknown rail":       {"paypal": 10},
		"negative cap":       {rail.WEpayout: -1},
	} {
		if _, err := ratelimit.NewBudget(rs.Client(), ratelimit.BudgetConfig{BatchCaps: caps}); !errors.Is(err, ratelimit.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	if _, err := b.Reserve(ctx, onRail("paypal", res("b1", acctA, day, 1))); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Errorf("reserve on an unknown rail: %v", err)
	}
	if _, err := b.Usage(ctx, "WOMPI", day, acctA); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Errorf("usage of an unknown rail: %v", err)
	}
	if _, err := b.SeedAmount(ctx, "x/y", day, acctA, 0); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Errorf("seed of an unknown rail: %v", err)
	}
}

// Each rail's API calls draw from their own bucket: one rail's burst used
// up leaves another's whole. Wompi's bucket keeps its key from before
// rails; a rail without a rate gets no token.
func TestRailLimitersBucketsAreIndependent(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	slow := ratelimit.RailRate{PerSecond: 0.001, Burst: 1} // one token, then one per 1,000 s
	l, err := ratelimit.NewRailLimiters(rs.Client(), rs.Prefix(), map[rail.Name]ratelimit.RailRate{
		rail.Wompi: slow, rail.SmartFastPay: slow})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ratelimit.RailLimiterKey("P:", ""), "P:wompi-post"; got != want {
		t.Fatalf("wompi's key = %q, want %q", got, want)
	}
	for i, step := range []struct {
		rail rail.Name
		ok   bool
	}{{rail.Wompi, true}, {rail.Wompi, false}, {"", false}, {rail.SmartFastPay, true}, {rail.SmartFastPay, false}} {
		ok, _, err := l.Allow(ctx, step.rail)
		if err != nil || ok != step.ok {
			t.Fatalf("step %d, %q: ok=%v %v, want %v", i, step.rail, ok, err, step.ok)
		}
	}
	if err := l.Wait(ctx, rail.WEpayout); err == nil || errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("wepayout without a rate: %v, want an error that is not ErrInvalid", err)
	}
	for _, r := range []rail.Name{rail.Wompi, rail.SmartFastPay} {
		if n, err := rs.Client().Exists(ctx, "rate:{"+ratelimit.RailLimiterKey(rs.Prefix(), r)+"}").Result(); err != nil || n != 1 {
			t.Errorf("bucket of %s: %d %v", r, n, err)
		}
	}
	for name, rates := range map[string]map[rail.Name]ratelimit.RailRate{
		"unknown rail":  {"paypal": slow},
		"wompi twice":   {"": slow, rail.Wompi: slow},
		"no burst":      {rail.Wompi: {PerSecond: 1}},
		"negative rate": {rail.WEpayout: {PerSecond: -1, Burst: 1}},
	} {
		if _, err := ratelimit.NewRailLimiters(rs.Client(), rs.Prefix(), rates); !errors.Is(err, ratelimit.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
