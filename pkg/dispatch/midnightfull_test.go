package dispatch

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Two faults lined up across midnight. A Wompi batch (600,000 cents, an
// account limited to 1,000,000 a day) is reserved on its day and posted
// just before midnight; Wompi answers 503 and creates nothing. While its
// retry waits, midnight passes and another batch of the account is paid
// 600,000 on the new day. The retry's slot is on the new day, which has no
// room: followDay may not move the reservation there. The first POST
// "may have landed", so the batch was posted all the same, with the old
// day's reservation: Wompi paid 1,200,000 cents on a day limited to
// 1,000,000. Like a refusal for now of Wompi's own (EXC_017), the batch
// must wait for the next day, keeping its reservation, and be looked up
// first then.
func TestRetryPastMidnightIntoAFullDayDoesNotOverspend(t *testing.T) {
	f := newFixture(t, fixtureOpt{partitions: 1})
	const limit = 1_000_000
	cfg := func(c *Config) { c.DailyLimitCents = limit }
	e := f.engine(cfg)
	e2 := f.engine(cfg)
	ctx := context.Background()
	today := payout.DayIn(testStart, bogota)
	tomorrow := today.Next()
	first := batch("rvb3-1", map[string]int64{"rvb3-a": 600_000}, "rvb3-a")
	second := batch("rvb3-2", map[string]int64{"rvb3-b": 600_000}, "rvb3-b")
	var secondErr error
	f.tap.onPost = func(n int) {
		if n != 1 {
			return
		}
		// The first batch's first POST (answered 503, not applied):
		// midnight passes, and the second batch is paid on the new day.
		f.clock.Set(tomorrow.StartIn(bogota).Add(30e9))
		b := second
		secondErr = e2.process(ctx, &b, nil, testLogger())
	}
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault503
		}
		return faultNone
	}
	b := first
	err := e.process(ctx, &b, nil, testLogger())
	if secondErr != nil {
		t.Fatalf("second batch: %v", secondErr)
	}
	led := f.sim.BatchLedger()
	if led[second.BatchID].Accepted != 1 {
		t.Fatalf("the second batch was not paid on the new day: %+v", led[second.BatchID])
	}
	if led[first.BatchID].Accepted > 0 {
		t.Fatalf("paid %d cents on %s, above the account's daily limit %d: a retry past midnight went out into a day with no room (first batch: %v)",
			first.TotalAmountInCents+second.TotalAmountInCents, tomorrow, limit, err)
	}
	if err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if n := outcome(e, "deferred"); n != 1 {
		t.Fatalf("the first batch deferred %d times, want 1", n)
	}
	// Its first POST may have landed: its reservation stays where it was.
	if held, herr := e.budget.Holds(ctx, newReservation(&first, first.OriginAccountID, first.TotalAmountInCents, testStart)); herr != nil || !held {
		t.Fatalf("the first batch's reservation on %s is gone (%v): a POST that may have landed counts nowhere", today, herr)
	}
}
