package dispatch

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Two faults: Redis lost the record of a batch Wompi already holds (a
// claim of it is fresh), and the replica that made that fresh claim died
// before its lookup by reference. The next claim resumes a record in state
// "claimed" with no POST on it, but nobody has proved the payout absent:
// Wompi has forgotten the idempotency key meanwhile, so a POST without a
// lookup would create a second payout. With a third fault, Wompi failing
// the resumed claim's lookups past the dispatcher's patience, the batch
// waits on the deferred topic and its copy must still be looked up first.
func TestClaimLeftBeforeItsLookupIsLookedUpFirst(t *testing.T) {
	t.Parallel()
	for _, outage := range []bool{false, true} {
		name := "resumed"
		if outage {
			name = "resumed-during-an-outage"
		}
		t.Run(name, func(t *testing.T) {
			f, b := heldAndForgotten(t, "claimdied")
			e := f.engine(func(c *Config) { c.RailPatience, c.RailRetry = time.Second, 2*time.Second })

			// The replica that died: its fresh claim, its lease run out.
			epoch, ready, err := e.st.epoch(t.Context())
			if err != nil || !ready {
				t.Fatalf("epoch %q ready %v: %v", epoch, ready, err)
			}
			c, err := e.st.claim(t.Context(), "died-after-claim", epoch, b.BatchID, rail.Wompi)
			if err != nil || c.code != "fresh" {
				t.Fatalf("the dead replica's claim: %+v %v", c, err)
			}
			if err := e.st.rdb.HSet(t.Context(), e.st.batchKey(b.BatchID), "lease", 0).Err(); err != nil {
				t.Fatal(err)
			}

			f.wompiDown(outage)
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			if outage {
				f.waitDeferred(requestIDs(b)...)
				f.deferredUnavailable(b)
				f.wompiDown(false)
				f.paidOnceAfterOutage(e, stop, b)
				return
			}
			eventually(t, "the batch handled", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			f.noDoublePayment()
			if n := f.sim.BatchLedger()[b.BatchID].Accepted; n != 1 {
				t.Fatalf("Wompi holds %d payouts for the batch, want 1 (a POST went out without a lookup)", n)
			}
			// Found after a loss: the tracker's statuses for it may have
			// gone with Redis, so neither a SUBMITTED per request nor the
			// batch's PENDING may follow them.
			if n, want := testutil.ToFloat64(e.m.lateSkipped), float64(len(b.Transactions)+1); n != want {
				t.Fatalf("%v statuses left out, want %v (the batch was found after a Redis loss)", n, want)
			}
		})
	}
}
