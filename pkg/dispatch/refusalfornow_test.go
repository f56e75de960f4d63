package dispatch

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Two faults: a POST creates the batch and its answer is lost, and the
// retry under the same key is refused for now (EXC_008, insufficient
// balance: Wompi's balance check ran before its idempotency check). The
// lookup by reference that every refusal gets finds the payout at once:
// the batch is adopted and SUBMITTED, never DEFERRED for a day it was paid
// on (a DAILY_LIMIT refusal would hold a paid batch until the next day),
// and no third POST goes out.
func TestRefusalForNowAfterAnAppliedPostAdoptsThePayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.fault = func(n int) fault {
		switch n {
		case 1:
			return faultCommitTimeout
		case 2:
			return faultBalance400
		}
		return faultNone
	}
	e := f.engine(func(c *Config) {
		c.HTTPTimeout = 500 * time.Millisecond
		c.DeferBalanceRetry = 100 * time.Millisecond
	})
	b := simpleBatch("applied-then-balance", 2)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") == 1 })
	_ = stop()
	if n := outcome(e, "deferred"); n != 0 {
		t.Fatalf("a batch Wompi held was deferred %d times on a refusal the lookup would have answered", n)
	}
	for _, tx := range b.Transactions {
		if d := byStatus(f.statuses())[tx.RequestID][payout.StatusDeferred]; len(d) != 0 {
			t.Fatalf("%s DEFERRED %+v although Wompi holds its payout", tx.RequestID, d)
		}
	}
	if n := len(f.kafka.ReadAll(t, f.topics.BatchesDeferred)); n != 0 {
		t.Fatalf("%d deferred copies of a batch Wompi holds", n)
	}
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("%d POSTs, want 2 (the applied one and the refused one)", n)
	}
	f.checkSubmitted(b)
	f.noDoublePayment()
	f.checkLifecycles()
}
