package localrun

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// In the load run (followed up to SUBMITTED), a request whose SUBMITTED the
// status gate left out because the tracker's PENDING came first has reached
// the provider: it counts as submitted, not as lost.
func TestLoadTallyCountsPendingWithoutSubmitted(t *testing.T) {
	m := NewMarketplace("tally", 1, Mix{}, time.Now)
	tl := NewTally(m, 2)
	tl.untilSubmitted = true
	batch, provider, wep := "b-1", "wep-77", "wepayout"
	for i := range 2 {
		tl.Published(i, KindWEpayout, 100, time.Now())
		tl.Observe(&payout.StatusChange{RequestID: m.RequestID(i), Status: payout.StatusBatched, BatchID: &batch})
	}
	tl.Observe(&payout.StatusChange{RequestID: m.RequestID(0), Status: payout.StatusPending, BatchID: &batch,
		TransactionID: &provider, Rail: &wep, Source: payout.SourcePoll})
	settled, submitted, _ := tl.Progress()
	if settled != 1 || submitted != 1 {
		t.Fatalf("settled %d, submitted %d; want the request with the tracker's PENDING counted, the other not", settled, submitted)
	}
}

// The raw consume's rate counts only records timed after the first fetch,
// and is not reported when too few came after it.
func TestRawRate(t *testing.T) {
	if r := rawRate(900_000, 1_000_000, time.Second); r != 900_000 {
		t.Fatalf("rate %v, want 900000", r)
	}
	for _, c := range []struct {
		timed, want int
		took        time.Duration
	}{{5, 100_000, time.Microsecond}, {0, 100, time.Second}, {100, 100, 0}} {
		if r := rawRate(c.timed, c.want, c.took); r != 0 {
			t.Fatalf("rawRate(%d, %d, %v) = %v, want 0 (not measured)", c.timed, c.want, c.took, r)
		}
	}
}

// wompiHolds has the simulator accept request i of m in a new batch of
// its own (a POST /payouts, left unsettled on the manual clock).
func wompiHolds(t *testing.T, sim *wompitest.Server, m *Marketplace, i int, batchRef string, amount int64) {
	t.Helper()
	_, err := sim.Client(nil).CreatePayout(context.Background(), "key-"+batchRef, &wompi.CreatePayoutRequest{Reference: batchRef,
		AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypeProviders, Transactions: []wompi.TransactionRequest{{
			LegalIDType: "CC", LegalID: "1000000001", BankID: wompitest.BankID("1007"), AccountType: "AHORROS",
			AccountNumber: "1234567890", Name: "Ana Pérez", Email: "ana@example.co", Amount: amount, Reference: m.RequestID(i)}}})
	if err != nil {
		t.Fatal(err)
	}
}

// A request Wompi accepted in two batches is paid twice once both settle:
// the reconciliation names it whether or not they settled within the run
// (a load run follows requests to SUBMITTED only), on both ledger paths
// (in-process, and the load run's compact ledger over HTTP), as it does
// for the single-payout rails. It counted only references settled
// APPROVED twice: a run that accepted a payee twice passed.
func TestReconcileNamesAReferenceWompiAcceptedTwice(t *testing.T) {
	m := NewMarketplace("dupw", 1, Mix{}, time.Now)
	tl := NewTally(m, 1)
	tl.untilSubmitted = true
	const amount = 100_000
	batch, payoutID := "b-1", "p-1"
	tl.Published(0, KindImmediate, amount, time.Now())
	tl.Observe(&payout.StatusChange{EventID: "1", RequestID: m.RequestID(0), Status: payout.StatusBatched, BatchID: &batch})
	tl.Observe(&payout.StatusChange{EventID: "2", RequestID: m.RequestID(0), Status: payout.StatusSubmitted, BatchID: &batch,
		PayoutID: &payoutID})
	sim := wompitest.NewTestServer(t, wompitest.Config{Clock: wompitest.NewManualClock(time.Now())})
	wompiHolds(t, sim, m, 0, "dupw-batch-1", amount)
	wompiHolds(t, sim, m, 0, "dupw-batch-2", amount)
	if le, _ := sim.LedgerEntry(m.RequestID(0)); le.Accepted != 2 || le.Approved != 0 {
		t.Fatalf("setup: ledger %+v, want accepted twice, not settled", le)
	}
	rep := tl.Reconcile(sim, nil, nil, 0, time.Second)
	if rep.OK() || !slices.Contains(rep.DuplicatesPaid, m.RequestID(0)) {
		t.Fatalf("in-process ledger: duplicates %v, OK %v: want %s named and the run failed", rep.DuplicatesPaid, rep.OK(), m.RequestID(0))
	}
	v, err := tl.fetchLedger(context.Background(), sim.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	if rep := tl.reconcile(v, 0, time.Second); rep.OK() || !slices.Contains(rep.DuplicatesPaid, m.RequestID(0)) {
		t.Fatalf("compact ledger: duplicates %v, OK %v: want %s named and the run failed", rep.DuplicatesPaid, rep.OK(), m.RequestID(0))
	}
}

// A request whose final status is REJECTED while a rail's ledger accepted
// it was reported refused and paid (the marketplace resends it under a new
// requestId): the reconciliation fails. It checked only the amounts of the
// requests that reached SUBMITTED, so such a run passed.
func TestReconcileFailsARejectedRequestARailAccepted(t *testing.T) {
	m := NewMarketplace("rejw", 1, Mix{}, time.Now)
	tl := NewTally(m, 2)
	const amount = 100_000
	batch, code := "b-1", "UNKNOWN_BANK_ID"
	for i := range 2 {
		tl.Published(i, KindImmediate, amount, time.Now())
		tl.Observe(&payout.StatusChange{EventID: "b" + m.RequestID(i), RequestID: m.RequestID(i), Status: payout.StatusBatched, BatchID: &batch})
		tl.Observe(&payout.StatusChange{EventID: "r" + m.RequestID(i), RequestID: m.RequestID(i), Status: payout.StatusRejected,
			BatchID: &batch, ReasonCode: &code})
	}
	sim := wompitest.NewTestServer(t, wompitest.Config{Clock: wompitest.NewManualClock(time.Now())})
	wompiHolds(t, sim, m, 0, "rejw-batch-1", amount) // request 1 was never posted: its REJECTED is right
	rep := tl.Reconcile(sim, nil, nil, 0, time.Second)
	if rep.OK() || !slices.Equal(rep.RejectedPaid, []string{m.RequestID(0)}) {
		t.Fatalf("rejected yet accepted: %v, OK %v: want only %s, and the run failed", rep.RejectedPaid, rep.OK(), m.RequestID(0))
	}
}
