package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
)

// Two faults together: a single-payout rail holds two payouts under one of
// our requestIds (someone posted it twice, or a listing lagged past the
// grace), and the earlier one FAILED while the later one pays. The lookup
// finds both; the earliest was adopted, so the request was handed off (and
// its SUBMITTED named) the failed payout: the tracker followed it to
// FAILED, the marketplace read the payee as unpaid and asked again while
// the rail paid the other. The payout that may still pay is adopted.
func TestTwoPayoutsUnderOurIDAdoptTheOneThatPays(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "two-payouts", 2)
		tx := b.Transactions[0]
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &tx)); err != nil {
			t.Fatal(err)
		}
		failed := "failed"
		if r.name == rail.WEpayout {
			failed = "4"
		}
		if err := r.sim.(interface{ SetStatus(string, string) error }).SetStatus(tx.RequestID, failed); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // created_at in whole seconds: the second is later
		live, err := r.client.Create(context.Background(), singleRequest(r.name, &tx))
		if err != nil {
			t.Fatal(err)
		}
		e := r.engine(f, func(c *Config) { c.LookupEveryPayee = true })
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		// Found on a fresh claim: no SUBMITTED, but the hand-off names the
		// payout the tracker follows.
		store := submitted.New(f.redis.Client(), f.redis.Prefix(), 0)
		if _, ok, err := store.Lookup(context.Background(), rail.HandOffID(r.name, live.ProviderID), live.ProviderID); err != nil || !ok {
			t.Fatalf("the payout that pays (%s) is not handed off to the tracker (ok=%v err=%v): the failed one was adopted", live.ProviderID, ok, err)
		}
		if n := r.sim.Accepted(tx.RequestID); n != 2 {
			t.Fatalf("%d payouts, want the two made before the batch", n)
		}
	})
}
