package dispatch

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Wompi lists two payouts under our batch's reference (someone posted it
// twice: a key that expired while a listing lagged, another system): its
// payees are already paid twice. The lookup adopts one and never posts a
// third, but it said nothing: pickPayout took the oldest silently, where a
// single-payout rail's lookup counts and logs the same case
// (provider_duplicates_total).
func TestTwoWompiPayoutsUnderOurReferenceAreReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := simpleBatch("two-wompi-payouts", 2)
	for _, key := range []string{"someone-else-1", "someone-else-2"} {
		createUnderReference(t, f, key, b.BatchID, wompiTransactions(b))
	}
	e := f.engine(nil)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if n := len(f.tap.snapshot()); n != 0 {
		t.Fatalf("%d POSTs, want none: a payout found by reference is adopted, never a third", n)
	}
	if n := testutil.ToFloat64(e.m.providerDupes.WithLabelValues(string(rail.Wompi))); n < 1 {
		t.Fatalf("two payouts under the batch's reference reported %v times, want at least once", n)
	}
}

// Of two payouts under our reference, the one adopted is the oldest that
// may still pay: an older one Wompi refused beside a newer one that pays
// would end the requests REJECTED while they are paid.
func TestPickPayoutPrefersOneThatMayPay(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		bs   []rail.Batch
		want string
	}{
		{"none", nil, ""},
		{"the oldest of two that may pay", []rail.Batch{{ProviderID: "new", Status: payout.BatchPending, CreatedAt: t0.Add(time.Minute)},
			{ProviderID: "old", Status: payout.BatchTotalPayment, CreatedAt: t0}}, "old"},
		{"a newer one that may pay over an older refused one", []rail.Batch{{ProviderID: "old", Status: payout.BatchRejected, CreatedAt: t0},
			{ProviderID: "new", Status: payout.BatchPending, CreatedAt: t0.Add(time.Minute)}}, "new"},
		{"the oldest of two refused", []rail.Batch{{ProviderID: "new", Status: payout.BatchNotApproved, CreatedAt: t0.Add(time.Minute)},
			{ProviderID: "old", Status: payout.BatchAFERejected, CreatedAt: t0}}, "old"},
		{"one whose status maps to nothing known may pay", []rail.Batch{{ProviderID: "old", Status: payout.BatchRejected, CreatedAt: t0},
			{ProviderID: "new", CreatedAt: t0.Add(time.Minute)}}, "new"},
	} {
		if got := pickPayout(tc.bs); got != tc.want {
			t.Errorf("%s: adopted %q, want %q", tc.name, got, tc.want)
		}
	}
}
