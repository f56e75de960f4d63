package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func budgetUsage(t *testing.T, e *Engine, day payout.Day) ratelimit.Usage {
	t.Helper()
	u, err := e.budget.Usage(context.Background(), rail.Wompi, day.String(), wompitest.AccountMain)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Issue 17: Wompi counts the daily batch cap on the day a batch is sent,
// even when it is scheduled for a later day. Two batches scheduled for
// tomorrow use today's two slots, so an immediate batch today is deferred
// by our own budget (the simulator's cap is far away: without our count it
// would be paid), while their amounts count on tomorrow.
func TestScheduledBatchesUseTodaysBatchSlots(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, sim: wompitest.Config{PublishedOnly: true}})
	e := f.engine(func(c *Config) { c.DailyBatchCap = 2 })
	tomorrow := payout.DayIn(testStart, bogota).Next()
	at := tomorrow.StartIn(bogota).Add(9 * time.Hour)
	s1, s2, now := simpleBatch("sched-1", 1), simpleBatch("sched-2", 1), simpleBatch("now", 1)
	s1.Schedule.DispersionDatetime, s2.Schedule.DispersionDatetime = &at, &at
	// Today's budget is known before the scheduled batches go out (as on
	// any busy day), so only our own count can stop the third batch.
	if _, err := e.budget.Seed(context.Background(), rail.Wompi, payout.DayIn(testStart, bogota).String(), wompitest.AccountMain, 0, 0); err != nil {
		t.Fatal(err)
	}
	// The reservation taken before the POST is already on today's slot
	// (followDay would move a wrong one at the last moment: not relied on).
	var mu sync.Mutex
	var atPost []ratelimit.Usage
	e.beforePost = func(string) {
		u, err := e.budget.Usage(context.Background(), rail.Wompi, payout.DayIn(testStart, bogota).String(), wompitest.AccountMain)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		atPost = append(atPost, u)
		mu.Unlock()
	}
	f.produce(f.topics.Batches, s1, s2, now)
	stop, _ := f.run(e)
	eventually(t, "two submitted, one deferred", func() bool {
		return outcome(e, "submitted") == 2 && outcome(e, "deferred") == 1
	})
	_ = stop()
	if n := testutil.ToFloat64(e.m.deferred.WithLabelValues(string(payout.ReasonBatchBudget))); n != 1 {
		t.Fatalf("deferred by the batch budget: %v, want the immediate batch", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(atPost) != 2 || atPost[0].Batches != 1 || atPost[1].Batches != 2 {
		t.Fatalf("today's slots before each POST: %+v, want 1 then 2", atPost)
	}
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("%d POSTs, want only the two scheduled batches': our budget defers the third", n)
	}
	if u := budgetUsage(t, e, payout.DayIn(testStart, bogota)); u.Batches != 2 || u.AmountInCents != 0 {
		t.Errorf("today: %+v, want the two slots and no amount", u)
	}
	if u := budgetUsage(t, e, tomorrow); u.Batches != 0 || u.AmountInCents != 200_000 {
		t.Errorf("tomorrow: %+v, want the two amounts and no slot", u)
	}
	f.noDoublePayment()
}

// A POST that slips past midnight after its reservation goes out on the
// new day: the first POST fails (503) and the clock crosses midnight before
// the retry. The slot moves to the new day, with the amount for an
// immediate batch, while a scheduled batch's amount stays on its day. The
// simulator counts the batch on the new day too.
func TestPostPastMidnightMovesTheSlot(t *testing.T) {
	t.Parallel()
	today := payout.DayIn(testStart, bogota)
	tomorrow := today.Next()
	dispersion := tomorrow.Next().StartIn(bogota).Add(9 * time.Hour)
	tests := []struct {
		name      string
		scheduled bool
		want      map[payout.Day][2]int64 // day -> {amount, batches}
	}{
		{name: "immediate", want: map[payout.Day][2]int64{today: {0, 0}, tomorrow: {100_000, 1}}},
		{name: "scheduled", scheduled: true, want: map[payout.Day][2]int64{today: {0, 0}, tomorrow: {0, 1}, tomorrow.Next(): {100_000, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpt{partitions: 1, sim: wompitest.Config{PublishedOnly: true}})
			f.tap.onPost = func(n int) {
				if n == 1 {
					f.clock.Set(tomorrow.StartIn(bogota).Add(30 * time.Second))
				}
			}
			f.tap.fault = func(n int) fault {
				if n == 1 {
					return fault503
				}
				return faultNone
			}
			e := f.engine(nil)
			b := simpleBatch("midnight-"+tc.name, 1)
			if tc.scheduled {
				b.Schedule.DispersionDatetime = &dispersion
			}
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			for day, want := range tc.want {
				if u := budgetUsage(t, e, day); u.AmountInCents != want[0] || int64(u.Batches) != want[1] {
					t.Errorf("%s: %+v, want amount %d and %d batches", day, u, want[0], want[1])
				}
			}
			f.noDoublePayment()
		})
	}
}

// A batch whose first POST would go out on a new day whose batch slots are
// all used is deferred, and its reservation released, without any POST.
func TestPostPastMidnightIntoAFullDayDefers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, sim: wompitest.Config{PublishedOnly: true}})
	e := f.engine(func(c *Config) { c.DailyBatchCap = 3 })
	today := payout.DayIn(testStart, bogota)
	tomorrow := today.Next()
	if _, err := e.budget.SeedBatches(context.Background(), rail.Wompi, tomorrow.String(), 3); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	e.beforePost = func(string) {
		once.Do(func() { f.clock.Set(tomorrow.StartIn(bogota).Add(30 * time.Second)) })
	}
	f.produce(f.topics.Batches, simpleBatch("full", 1))
	stop, _ := f.run(e)
	eventually(t, "batch deferred", func() bool { return outcome(e, "deferred") == 1 })
	_ = stop()
	if n := len(f.tap.snapshot()); n != 0 {
		t.Fatalf("%d POSTs, want none: the new day has no slot", n)
	}
	if n := testutil.ToFloat64(e.m.deferred.WithLabelValues(string(payout.ReasonBatchBudget))); n != 1 {
		t.Fatalf("deferred by the batch budget: %v", n)
	}
	if u := budgetUsage(t, e, today); u.Batches != 0 || u.AmountInCents != 0 {
		t.Errorf("today: %+v, want the reservation released", u)
	}
	if u := budgetUsage(t, e, tomorrow); u.Batches != 3 {
		t.Errorf("tomorrow: %+v, want its 3 slots untouched", u)
	}
}
