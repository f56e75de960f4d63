package dispatch

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A single-payout rail holds a payout under one of our requestIds for
// another amount than the request's: the requestId was used before (sent
// again with another amount after DEDUPE_WINDOW, or posted by someone
// else). The lookup finds it; our id names it, so it is adopted and not
// posted again, but its amount was never compared: the request's events
// said its amount was paid, and nothing told anyone. It is counted and
// logged.
func TestAPayoutFoundForAnotherAmountIsReported(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "adopt-amount", 2)
		other := b.Transactions[0]
		other.AmountInCents += 100
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &other)); err != nil {
			t.Fatal(err)
		}
		e := r.engine(f, func(c *Config) { c.LookupEveryPayee = true })
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		if n := testutil.ToFloat64(e.m.amountMismatch.WithLabelValues(string(r.name))); n != 1 {
			t.Fatalf("%v payouts reported found for another amount, want 1", n)
		}
		if n := r.sim.Accepted(other.RequestID); n != 1 {
			t.Fatalf("%s: %d payouts, want the one found, adopted and not posted again", other.RequestID, n)
		}
		f.checkSinglePaid(r, b, map[string]bool{other.RequestID: true})
	})
}
