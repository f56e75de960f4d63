package dispatch

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// unbankedThenRejected runs a Wompi batch of two payees to the point where
// payee 0, kept by a first attempt, was dropped for its bank by a later
// one (verdict 'x') and its REJECTED UNKNOWN_BANK_ID went out: the first
// attempt keeps both and defers the batch (the day's budget); the copy's
// attempt reads a bank table without payee 0's bank and, no POST of the
// batch ever having gone out, emits its REJECTED at once and defers the
// rest (the budget still used up). It returns the original batch, whose
// offset commit is taken as lost, and the dropped requestId.
func unbankedThenRejected(t *testing.T, f *fixture, name string, timing func(*Config)) (payout.Batch, string) {
	t.Helper()
	b := simpleBatch(name, 2)
	b.Transactions[1].Beneficiary.BankCode = "1001" // always listed
	dropped := b.Transactions[0].RequestID
	full := func(c *Config) {
		timing(c)
		c.DailyLimitCents = 50_000
	}
	bb := b
	if err := f.engine(full).process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	deferred := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	if len(deferred) != 1 {
		t.Fatalf("%d deferred copies, want 1", len(deferred))
	}
	var cp payout.Batch
	if err := f.codec.DecodeBatch(deferred[0].Value, &cp); err != nil {
		t.Fatal(err)
	}
	e2 := f.engine(func(c *Config) {
		full(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: bankless{base: f.tap}}), wompi.RailConfig{})
	})
	if err := e2.process(context.Background(), &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy's attempt: %v", err)
	}
	idx := byStatus(f.statuses())
	if len(idx[dropped][payout.StatusRejected]) != 1 {
		t.Fatalf("setup: payee %s not REJECTED by the copy's attempt: %v", dropped, idx[dropped])
	}
	// What payoutsctl trace shows of it.
	if o, found, err := RequestOwner(context.Background(), f.redis.Client(), f.redis.Prefix(), dropped); err != nil || !found ||
		o.BatchID != b.BatchID || !o.Rejected || !o.Unbanked {
		t.Fatalf("index entry of %s: %+v found=%v %v, want rejected by %s for its bank after an earlier attempt kept it", dropped, o, found, err, b.BatchID)
	}
	if o, _, _ := RequestOwner(context.Background(), f.redis.Client(), f.redis.Prefix(), b.Transactions[1].RequestID); o.Rejected || o.Unbanked {
		t.Fatalf("index entry of the kept payee: %+v", o)
	}
	return b, dropped
}

// Two faults lined up (from a review of 274bc50): the bank directory flips
// twice, and a batch is read again. After unbankedThenRejected, the
// original is read again (its offset commit lost) once the bank is listed
// again: the index entry still named the batch as the payee's keeper (a
// verdict 'x' left it so), screening kept the payee, and Wompi paid a
// request the status topic says is REJECTED (final).
func TestUnbankedDropStaysRejectedWhenTheBankReturnsAndTheBatchIsReadAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b, dropped := unbankedThenRejected(t, f, "bankflipback", func(*Config) {})
	bb := b
	if err := f.engine(nil).process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original read again: %v", err)
	}
	f.noDoublePayment()
	if le, ok := f.sim.LedgerEntry(dropped); ok && le.Accepted > 0 {
		t.Errorf("request %s is REJECTED UNKNOWN_BANK_ID (final), yet Wompi pays it", dropped)
	}
	f.checkLifecycles()
}

// The same drop, then the original read again by a replica without a bank
// table while Wompi is down past its patience (GET /banks fails, so the
// deferral peeks at the index: e4427e6). The peek read the entry the 'x'
// had left as a kept one: the REJECTED payee went back into the deferred
// copy (its DEFERRED, under the eventId of its first one, dedupes away),
// and once Wompi and the bank were back the copy paid it.
func TestUnbankedDropStaysOutOfTheCopyWhenReadAgainDuringAnOutage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	timing := func(c *Config) { c.RailPatience, c.RailRetry = 500*time.Millisecond, 2*time.Second }
	b, dropped := unbankedThenRejected(t, f, "bankflip-outage", timing)
	f.wompiDown(true)
	bb := b
	if err := f.engine(timing).process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original read again: %v", err)
	}
	deferred := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	var cp payout.Batch
	if err := f.codec.DecodeBatch(deferred[len(deferred)-1].Value, &cp); err != nil {
		t.Fatal(err)
	}
	for _, tx := range cp.Transactions {
		if tx.RequestID == dropped {
			t.Errorf("payee %s, REJECTED UNKNOWN_BANK_ID, is in the deferred copy again", dropped)
		}
	}
	// Wompi back, the bank listed again: the copy's attempt.
	f.wompiDown(false)
	if err := f.engine(timing).process(context.Background(), &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy's attempt: %v", err)
	}
	f.noDoublePayment()
	if le, ok := f.sim.LedgerEntry(dropped); ok && le.Accepted > 0 {
		t.Errorf("request %s is REJECTED UNKNOWN_BANK_ID (final), yet Wompi pays it", dropped)
	}
	f.checkLifecycles()
}
