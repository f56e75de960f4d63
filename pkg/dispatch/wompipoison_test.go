package dispatch

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A Wompi batch that fails for good may be ended REJECTED only once Wompi
// is known not to hold it (poison): a paid payee REJECTED is sent again by
// the marketplace under a new requestId, and paid twice. Every way a Wompi
// batch reaches poison after an earlier attempt may have posted it must
// either look it up by reference first or keep it.

// Two faults: Redis lost the record of a batch Wompi already holds (a POST
// from before the loss: the firstPostAt that called for a lookup went with
// the record), and Wompi fails every call for longer than the dispatcher's
// patience, so the claim's lookup never answers. The batch is deferred
// (wompiUnavailable, unsettled: the record is marked as posted first), and
// the deferral fails for good (its copy cannot be built: a stand-in for any
// permanent failure after that point). poison then saw no firstPostAt in
// the job and emitted REJECTED for every payee of a batch Wompi pays,
// without a lookup. It must ask Wompi first, and keep the batch while
// Wompi cannot answer; once Wompi answers, the payout is adopted.
func TestWompiPoisonAfterAnUnansweredLookupRejectsNobody(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := simpleBatch("poison-unsettled", 2)
	f.wompiHolds(b)
	// The deferred copy of this batch cannot be encoded (deferredCopy's
	// PermanentError), while its status events can: nothing before the
	// deferral encodes a payee's account type.
	b.Transactions = slices.Clone(b.Transactions)
	b.Transactions[1].Beneficiary.AccountType = "NOT-AN-ACCOUNT-TYPE"
	f.wompiDown(true)
	e := f.engine(func(c *Config) { c.RailPatience = 300 * time.Millisecond })
	ctx := context.Background()
	bb := b
	err := e.process(ctx, &bb, nil, testLogger())
	t.Logf("first attempt (Wompi down): %v", err)
	f.kafka.Settle(t, time.Second, f.topics.Status)
	for _, s := range f.statuses() {
		if s.Status == payout.StatusRejected {
			t.Fatalf("REJECTED for a payee of a batch Wompi holds, no lookup having answered: %+v", s)
		}
	}
	if n := outcome(e, "failed"); n != 0 {
		t.Fatalf("the batch was ended as failed while Wompi, which holds it, could not be asked")
	}

	f.wompiDown(false)
	bb = b
	if err := e.process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("attempt once Wompi is back: %v", err)
	}
	f.checkSubmitted(b)
	f.noDoublePayment()
	for _, s := range f.statuses() {
		if s.Status == payout.StatusRejected {
			t.Fatalf("REJECTED for a payee of a batch Wompi holds: %+v", s)
		}
	}
}
