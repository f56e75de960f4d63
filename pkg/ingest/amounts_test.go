package ingest

import (
	"math"
	"math/big"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Three WEpayout requests of the same origin account, payment type and
// schedule, each 6,148,914,691,236,517,206 cents: WEpayout's rules had no
// maximum, and the three shared a batch whose total wrapped around int64 to
// 2 cents, which the dispatcher reserved against the daily limit. Each is
// now refused (INVALID_AMOUNT, above wepayout.MaxAmountInCents), and no
// batch's total is ever other than the true sum of its transactions.
func TestWEpayoutAmountAboveItsMaximumNeverShareABatch(t *testing.T) {
	f := newFixture(t, 1)
	const each = int64(6148914691236517206) // about 2^64/3
	var reqs []payout.Request
	for i := 1; i <= 3; i++ {
		r := request(i, "acc-brl", 0)
		r.Currency = "BRL" // routed to wepayout by RAIL_ROUTES' default
		r.Beneficiary = payout.Beneficiary{LegalIDType: payout.LegalCPF, LegalID: "52998224725", Name: "Maria Souza",
			Email: "maria@example.com", AccountType: payout.AccountAhorros, PixKey: strp("maria.souza@example.com")}
		r.AmountInCents = each
		reqs = append(reqs, r)
	}
	f.produce(reqs)
	var maxAmount int64
	stop := f.run(f.engine("ingest-wep-max", func(c *Config) { maxAmount = c.MaxAmountCents }))
	o := f.read(3)
	stop()
	if maxAmount == 0 {
		maxAmount = 150_000_000_000 // New's default (wompi.DefaultDailyLimitCents)
	}
	for id, sts := range o.statuses {
		t.Logf("%s: %s (reason %v)", id, sts[0].Status, deref(sts[0].ReasonCode))
	}
	for _, b := range o.batches {
		sum := new(big.Int)
		for _, tx := range b.Transactions {
			sum.Add(sum, big.NewInt(tx.AmountInCents))
		}
		t.Logf("batch %s: %d transactions, TotalAmountInCents %d, true sum %s", b.BatchID, len(b.Transactions), b.TotalAmountInCents, sum)
		if !sum.IsInt64() || sum.Int64() != b.TotalAmountInCents {
			t.Errorf("batch %s holds %d transactions whose true sum is %s cents, but its total is %d cents (int64 wrap-around)",
				b.BatchID, len(b.Transactions), sum, b.TotalAmountInCents)
		}
		if len(b.Transactions) > 1 && (!sum.IsInt64() || sum.Int64() > maxAmount) {
			t.Errorf("batch %s: %d transactions totalling %s cents share a batch above BATCH_MAX_AMOUNT_CENTS %d", b.BatchID, len(b.Transactions), sum, maxAmount)
		}
	}
	for _, r := range reqs {
		sts := o.statuses[r.RequestID]
		if len(sts) != 1 || sts[0].Status != payout.StatusRejected || deref(sts[0].ReasonCode) != string(payout.ReasonInvalidAmount) {
			t.Errorf("%s: %d statuses, want one REJECTED INVALID_AMOUNT (above WEpayout's maximum)", r.RequestID, len(sts))
		}
	}
}

// The aggregator closes a batch before a request whose amount would
// overflow its total, whatever BATCH_MAX_AMOUNT_CENTS is: a total that
// wrapped below the cap would pass it, and the dispatcher would reserve
// the wrapped amount against the daily limit.
func TestAggregatorClosesBeforeTheTotalOverflows(t *testing.T) {
	a := newAggregator("batches", 10, math.MaxInt64, 1<<20)
	var closed []*openBatch
	for i := range 3 {
		r := request(i+1, "acc-a", 0)
		r.AmountInCents = math.MaxInt64/2 + 1
		c, _, fits := a.add(&r, 0, int64(i), 300)
		if !fits {
			t.Fatalf("request %d does not fit", i)
		}
		if c != nil {
			closed = append(closed, c)
		}
	}
	if len(closed) != 2 {
		t.Fatalf("%d batches closed on amount, want 2: no two amounts of MaxInt64/2+1 can share a batch", len(closed))
	}
	for _, c := range closed {
		if c.batch.TotalAmountInCents <= 0 {
			t.Fatalf("a closed batch's total wrapped: %d", c.batch.TotalAmountInCents)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
