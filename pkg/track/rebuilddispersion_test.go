package track

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// A batch scheduled for a dispersion four days after its creation is paid
// on that day. Redis loses everything (the hand-off, the schedule) before
// the poll that would have read the payment, and the payment's webhooks
// are lost with it (answered 503 while Redis was gone, Wompi's retries
// spent). The rebuild lists the batch, final, created more than
// RebuildLookback ago: left off the schedule, its requests' APPROVED was
// never emitted. Paid within RebuildLookback, it must be taken.
func TestRebuildTakesScheduledBatchPaidWithinLookback(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, sim: wompitest.Config{Faults: wompitest.Faults{WebhookDropRate: 1}}})
	ctx := context.Background()
	dispersion := t0.Add(4 * 24 * time.Hour).Truncate(time.Minute)
	txs := []wompi.TransactionRequest{f.payee("1234567890"), f.payee("1234567891")}
	f.seq++
	batchID := fmt.Sprintf("batch-%s-%d", shortName(t), f.seq)
	res, err := f.wompi.CreatePayout(ctx, "key-"+batchID, &wompi.CreatePayoutRequest{Reference: batchID,
		AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypeProviders, DispersionDatetime: dispersion,
		Transactions: txs})
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	var st []submitted.Transaction
	var total int64
	for tx, err := range f.wompi.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, tx.Reference)
		total += tx.AmountInCents
		st = append(st, submitted.Transaction{TransactionID: tx.ID, RequestID: tx.Reference, BatchID: batchID,
			PayoutID: res.PayoutID, AmountInCents: tx.AmountInCents, OriginAccountID: wompitest.AccountMain})
	}
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: res.PayoutID, BatchID: batchID, OriginAccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypeProviders, TotalAmountInCents: total, TransactionCount: len(st), SubmittedAt: f.clock.Now()},
		st, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e, srv := f.engine()
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	// The first poll finds the batch scheduled and comes back at its
	// dispersion time, when Wompi has not paid it yet.
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(dispersion)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Paid a minute later, its webhooks lost; Redis loses everything
	// before the next poll (30 min later: the batch is days old).
	if n := f.sim.Advance(time.Minute); n != len(txs) {
		t.Fatalf("%d transactions settled, want %d", n, len(txs))
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	byKey := transitions(evs)
	for _, ref := range refs {
		if len(byKey[ref+"/APPROVED"]) != 1 {
			t.Errorf("%s: statuses %v: paid at its dispersion, its APPROVED was never emitted after the rebuild",
				ref, statusesOf(evs, ref))
		}
	}
}
