package dispatch

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A batch whose total alone is above its account's daily limit can never
// be paid as it is: it is deferred every day. It is counted apart
// (payouts_dispatcher_over_daily_limit_total, which an alert watches),
// and a batch denied only because the day is used up is not.
func TestOverDailyLimitBatchIsCounted(t *testing.T) {
	t.Parallel()
	t.Run("wompi", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpt{})
		e := f.engine(func(c *Config) { c.DailyLimitCents = 1_000_000 })
		b1 := batch("over-1", map[string]int64{"over-1a": 600_000}, "over-1a")
		b2 := batch("over-2", map[string]int64{"over-2a": 600_000}, "over-2a")
		b3 := batch("over-3", map[string]int64{"over-3a": 600_000, "over-3b": 600_000}, "over-3a", "over-3b")
		f.produce(f.topics.Batches, b1)
		stop, _ := f.run(e)
		defer func() { _ = stop() }()
		eventually(t, "first batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		f.produce(f.topics.Batches, b2)
		eventually(t, "second batch deferred", func() bool { return outcome(e, "deferred") == 1 })
		if n := testutil.ToFloat64(e.m.overLimit.WithLabelValues(string(rail.Wompi))); n != 0 {
			t.Fatalf("a batch denied only for the day's use counted over the limit: %v", n)
		}
		f.produce(f.topics.Batches, b3)
		eventually(t, "third batch deferred", func() bool { return outcome(e, "deferred") == 2 })
		if n := testutil.ToFloat64(e.m.overLimit.WithLabelValues(string(rail.Wompi))); n != 1 {
			t.Fatalf("over_daily_limit_total{rail=wompi} = %v, want 1 (the 1,200,000-cent batch)", n)
		}
	})
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		e := r.engine(f, func(c *Config) { c.DailyLimitCents = 150_000 })
		b := singleBatch(r, "over-"+string(r.name), 2) // 200,000 cents
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		defer func() { _ = stop() }()
		eventually(t, "batch deferred", func() bool { return outcome(e, "deferred") == 1 })
		if n := testutil.ToFloat64(e.m.overLimit.WithLabelValues(string(r.name))); n != 1 {
			t.Fatalf("over_daily_limit_total{rail=%s} = %v, want 1", r.name, n)
		}
		for _, tx := range b.Transactions {
			if n := r.sim.Accepted(tx.RequestID); n != 0 {
				t.Fatalf("%s paid %d times past the daily limit", tx.RequestID, n)
			}
		}
	})
}
