package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A first POST is applied and its answer lost (a timeout); the retry under
// the same key is refused for now (400 EXC_008, insufficient balance). The
// refusal is not taken at its word: the lookup by reference that follows
// it finds the payout Wompi holds, and the batch is adopted at once,
// SUBMITTED, instead of deferred (DEFERRED INSUFFICIENT_BALANCE for
// requests Wompi is paying, their SUBMITTED held back until the copy's
// turn).
func TestRefusalForNowAfterALandedPostAdoptsThePayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return faultCommitTimeout // Wompi creates the batch; the answer never comes
		}
		return faultBalance400
	}
	e := f.engine(func(c *Config) { c.HTTPTimeout = 500 * time.Millisecond })
	b := simpleBatch("fornow-landed", 2)
	bb := b
	if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("process: %v", err)
	}
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("setup: %d POSTs, want 2 (the second refused for now)", n)
	}
	if d := f.kafka.ReadAll(t, f.topics.BatchesDeferred); len(d) != 0 {
		t.Fatalf("%d deferred copies of a batch Wompi holds: the refusal for now was taken at its word", len(d))
	}
	for rid, byS := range byStatus(f.statuses()) {
		if len(byS[payout.StatusDeferred]) != 0 {
			t.Errorf("%s: DEFERRED for a request Wompi holds", rid)
		}
	}
	f.noDoublePayment()
	f.checkSubmitted(b)
}
