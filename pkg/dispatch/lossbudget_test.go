package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Two faults on one day: an account of a single-payout rail is paid most
// of its daily limit, then Redis loses the day's budget. The rail
// publishes no figure of what was paid, so the budget restarted at 0 and
// the account was paid its limit a second time. The recovery's listing
// now counts what the rail paid that day against every account of the
// rail; the next batch waits for the next day.
func TestSingleRailBudgetAfterARedisLossCountsWhatTheRailListed(t *testing.T) {
	for i, n := range []rail.Name{rail.SmartFastPay, rail.WEpayout} {
		t.Run(string(n), func(t *testing.T) {
			// The simulator's clock is the fixture's: it dates each payout.
			f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
			r := singleRailsAt(t, f.clock)[i](t)
			loc := rail.Location(r.name)
			today := payout.DayIn(testStart, loc)
			f.clock.Set(today.StartIn(loc).Add(10 * time.Hour))
			const limit = 250_000
			timing := func(c *Config) { c.DailyLimitCents = limit }
			first := singleBatch(r, "before", 2) // 200,000 cents
			b := first
			if err := r.engine(f, timing).process(context.Background(), &b, nil, testLogger()); err != nil {
				t.Fatalf("first batch: %v", err)
			}
			if paid := paidOf(r, first); paid != 200_000 {
				t.Fatalf("first batch paid %d, want 200000", paid)
			}
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			e2 := r.engine(f, timing)
			second := singleBatch(r, "after", 2)
			b = second
			if err := e2.process(context.Background(), &b, nil, testLogger()); err != nil {
				t.Fatalf("second batch: %v", err)
			}
			if n := testutil.ToFloat64(e2.m.recoveries); n != 1 {
				t.Fatalf("recoveries %v, want 1", n)
			}
			if paid := paidOf(r, first, second); paid > limit {
				t.Fatalf("paid %d on %s, above the account's daily limit %d: the budget restarted at 0 after the Redis loss",
					paid, today, limit)
			}
			if n := testutil.ToFloat64(e2.m.deferred.WithLabelValues(string(payout.ReasonDailyLimit))); n != 1 {
				t.Fatalf("deferred DAILY_LIMIT %v times, want the second batch once", n)
			}
			u, err := e2.budget.Usage(context.Background(), r.name, today.String(), first.OriginAccountID)
			if err != nil || u.AmountInCents != 200_000 {
				t.Fatalf("%s usage %+v %v, want the 200000 the rail listed", today, u, err)
			}
			// The day after, the account starts afresh: what was listed
			// counts on its own day only.
			f.clock.Set(today.Next().StartIn(loc).Add(10 * time.Hour))
			third := singleBatch(r, "nextday", 2)
			b = third
			if err := r.engine(f, timing).process(context.Background(), &b, nil, testLogger()); err != nil {
				t.Fatalf("next day's batch: %v", err)
			}
			if paid := paidOf(r, third); paid != 200_000 {
				t.Fatalf("next day's batch paid %d, want 200000", paid)
			}
		})
	}
}

// What a recovery's listing counts: the payouts of its own day and later,
// each on the rail's day of its creation; one without a creation time on
// the recovery's day (never too little); the earlier days', over, not at
// all.
func TestListedSpendCountsTheRecoverysDayAndLater(t *testing.T) {
	loc := rail.Location(rail.WEpayout)
	today := payout.DayIn(testStart, loc)
	at := today.StartIn(loc).Add(23*time.Hour + 59*time.Minute)
	s := newListedSpend(at)
	for _, p := range []rail.Payout{
		{AmountInCents: 100, CreatedAt: at.Add(-time.Hour)},
		{AmountInCents: 20, CreatedAt: at.Add(2 * time.Minute)}, // past midnight
		{AmountInCents: 3}, // no creation time
		{AmountInCents: 4000, CreatedAt: today.StartIn(loc).Add(-time.Second)},
		{AmountInCents: -50, CreatedAt: at},
	} {
		s.add(rail.WEpayout, p)
	}
	want := map[payout.Day]int64{today: 103, today.Next(): 20}
	if got := s.days[rail.WEpayout]; len(got) != len(want) || got[today] != want[today] || got[today.Next()] != want[today.Next()] {
		t.Fatalf("listed %v, want %v", got, want)
	}
	var none *listedSpend
	none.add(rail.WEpayout, rail.Payout{AmountInCents: 1}) // the first start's rebuild counts nothing
}
