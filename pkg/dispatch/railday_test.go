package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Issue 19: a batch's budget days are its rail's business days. At 23:30
// in Bogota it is 01:30 of the next day in Sao Paulo (UTC-3, no daylight
// saving since 2019): a WEpayout batch reserves on the Sao Paulo day, a
// Wompi or SmartFastPay batch on the Bogota day, as before rails. The
// reservation names the batch's rail (none: Wompi), and a batch denied by
// its budget waits for its rail's next midnight.
func TestBudgetDaysFollowTheRailsZone(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 23, 30, 0, 0, bogota)
	if sp := now.In(rail.Location(rail.WEpayout)); sp.Day() != 22 || sp.Hour() != 1 {
		t.Fatalf("Sao Paulo time of %v is %v, want 01:30 on the 22nd", now, sp)
	}
	scheduled := time.Date(2026, 11, 23, 23, 30, 0, 0, bogota) // 01:30 on the 24th in Sao Paulo
	named := func(n rail.Name) *string { s := string(n); return &s }
	tests := []struct {
		name            string
		rail            *string
		dispersion      *time.Time
		wantRail        rail.Name
		wantDay, wantSl string
		wantNext        time.Time
	}{
		{"no rail is wompi", nil, nil, rail.Wompi, "2026-11-21", "2026-11-21",
			time.Date(2026, 11, 22, 0, 0, 0, 0, bogota)},
		{"wompi", named(rail.Wompi), nil, rail.Wompi, "2026-11-21", "2026-11-21",
			time.Date(2026, 11, 22, 0, 0, 0, 0, bogota)},
		{"wompi scheduled", nil, &scheduled, rail.Wompi, "2026-11-23", "2026-11-21",
			time.Date(2026, 11, 22, 0, 0, 0, 0, bogota)},
		{"smartfastpay", named(rail.SmartFastPay), nil, rail.SmartFastPay, "2026-11-21", "2026-11-21",
			time.Date(2026, 11, 22, 0, 0, 0, 0, bogota)},
		{"wepayout", named(rail.WEpayout), nil, rail.WEpayout, "2026-11-22", "2026-11-22",
			time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)},
		{"wepayout scheduled", named(rail.WEpayout), &scheduled, rail.WEpayout, "2026-11-24", "2026-11-22",
			time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := simpleBatch("zone", 1)
			b.Rail, b.Schedule.DispersionDatetime = tc.rail, tc.dispersion
			r := newReservation(&b, wompitest.AccountMain, 100, now)
			want := ratelimit.Reservation{BatchID: b.BatchID, Rail: tc.wantRail, AccountID: wompitest.AccountMain,
				Day: tc.wantDay, SlotDay: tc.wantSl, AmountInCents: 100}
			if r != want {
				t.Fatalf("reservation %+v, want %+v", r, want)
			}
			j := &job{e: &Engine{cfg: Config{Now: func() time.Time { return now }}}, b: &b}
			if got := j.nextDayStart(); !got.Equal(tc.wantNext) {
				t.Fatalf("next day starts %v, want %v", got, tc.wantNext)
			}
		})
	}
}

// The dispatcher's seed reads Wompi's figures: it never writes them into
// another rail's budgets.
func TestSeedRefusesAnotherRailsBudgets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	b := simpleBatch("wep", 1)
	ctx := context.Background()
	j := &job{e: e, b: &b, log: testLogger(), soft: ctx, hard: ctx, acct: wompitest.AccountMain}
	day := payout.DayIn(testStart, rail.Location(rail.WEpayout)).String()
	err := j.seed(&ratelimit.NotSeededError{Rail: rail.WEpayout, AccountID: wompitest.AccountMain, AmountDay: day, SlotDay: day})
	if err == nil {
		t.Fatal("seeded WEpayout's budgets from Wompi's figures")
	}
	u, err := e.budget.Usage(ctx, rail.WEpayout, day, wompitest.AccountMain)
	if err != nil || u != (ratelimit.Usage{}) {
		t.Fatalf("wepayout usage %+v %v, want nothing seeded", u, err)
	}
}
