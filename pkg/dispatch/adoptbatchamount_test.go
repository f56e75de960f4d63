package dispatch

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Wompi holds a payout under our batch's reference whose transactions
// name our requestIds, one for another amount than the request's: the
// reference was used before (ingest's batch id hashes the requestIds, the
// positions and the total, not each amount: the same requests sent again
// with their amounts moved between them, after RecordTTL and
// DEDUPE_WINDOW, or a payout someone else created under our reference).
// The fresh claim's lookup finds it; our reference names it, so it is
// adopted and not posted again, but its amounts were never compared: the
// requests' events said their amounts were paid, and nothing told anyone,
// where a single-payout rail's lookup counts and logs the same case
// (TestAPayoutFoundForAnotherAmountIsReported).
func TestAWompiBatchFoundForOtherAmountsIsReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := simpleBatch("adopt-batch-amount", 2)
	txs := wompiTransactions(b)
	txs[0].Amount += 100
	createUnderReference(t, f, "someone-else-1", b.BatchID, txs)
	e := f.engine(nil)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if n := len(f.tap.snapshot()); n != 0 {
		t.Fatalf("%d POSTs, want none: the payout found by reference is adopted", n)
	}
	if n := testutil.ToFloat64(e.m.amountMismatch.WithLabelValues(string(rail.Wompi))); n != 1 {
		t.Fatalf("%v transactions reported found for another amount, want 1", n)
	}
}

// wompiTransactions is b's transactions as a payout's creation at Wompi
// names them (a bank the simulator knows).
func wompiTransactions(b payout.Batch) []wompi.TransactionRequest {
	var txs []wompi.TransactionRequest
	for _, tr := range b.Transactions {
		txs = append(txs, wompi.TransactionRequest{LegalIDType: "CC", LegalID: tr.Beneficiary.LegalID, BankID: wompitest.BankID("1007"),
			AccountType: "AHORROS", AccountNumber: tr.Beneficiary.AccountNumber, Name: tr.Beneficiary.Name, Email: tr.Beneficiary.Email,
			Amount: tr.AmountInCents, Reference: tr.RequestID})
	}
	return txs
}

// createUnderReference creates a payout of txs at the simulator under
// reference, with idempotency key key: posted by someone else.
func createUnderReference(t *testing.T, f *fixture, key, reference string, txs []wompi.TransactionRequest) {
	t.Helper()
	if _, err := f.sim.Client(nil).CreatePayout(context.Background(), key, &wompi.CreatePayoutRequest{Reference: reference,
		AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypeProviders, Transactions: txs}); err != nil {
		t.Fatal(err)
	}
}
