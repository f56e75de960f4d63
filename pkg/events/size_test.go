package events

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// TransactionSize is exact and BatchOverhead a tight upper bound, so ingest
// can cut batches by bytes without encoding them: checked against
// AppendBatch for batches of 0 to 2,500 transactions (several array blocks)
// with strings of every length class.
func TestBatchSizeBound(t *testing.T) {
	c, err := NewCodec(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	str := func(max int) string { return strings.Repeat("x", rng.IntN(max+1)) }
	for _, n := range []int{0, 1, 2, 999, 1000, 1001, 2500} {
		for _, sched := range []payout.Schedule{
			{},
			{DispersionDatetime: ptr(ms("2026-12-01T14:30:00Z")), Recurring: &payout.Recurring{Interval: payout.IntervalMonth, Months: 6, Description: ptr(strings.Repeat("d", 300))}},
		} {
			b := payout.Batch{
				BatchID: "b-" + strings.Repeat("0", 40), OriginAccountID: "acc-" + str(60), PaymentType: payout.PaymentPayroll,
				Schedule: sched, CreatedAt: time.Now(), TotalAmountInCents: 1 << 40, TransactionCount: int32(n), Rail: ptr("smartfastpay"),
			}
			bound := BatchOverhead(b.OriginAccountID, &b.Schedule)
			for i := 0; i < n; i++ {
				ben := fullBeneficiary()
				ben.Name, ben.Email = str(400), str(254)
				if i%2 == 0 {
					ben.BankID = nil
				}
				tx := payout.Transaction{RequestID: "r-" + str(62), Beneficiary: ben, AmountInCents: rng.Int64N(1 << 50), RequestedAt: time.UnixMilli(rng.Int64N(1 << 42))}
				b.Transactions = append(b.Transactions, tx)
				one := payout.Batch{PaymentType: payout.PaymentOther, Transactions: []payout.Transaction{tx}}
				empty := payout.Batch{PaymentType: payout.PaymentOther}
				v1, err1 := c.AppendBatch(nil, &one)
				v0, err0 := c.AppendBatch(nil, &empty)
				if err1 != nil || err0 != nil {
					t.Fatal(err1, err0)
				}
				// One block of one item: count varint (1) + block size varint.
				if got, want := len(v1)-len(v0), TransactionSize(&tx)+1+longSize(int64(TransactionSize(&tx))); got != want && got != TransactionSize(&tx)+1 {
					t.Fatalf("transaction %d: encodes to %d bytes in a batch, TransactionSize says %d", i, got, TransactionSize(&tx))
				}
				bound += TransactionSize(&tx)
			}
			v, err := c.AppendBatch(nil, &b)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) > bound {
				t.Fatalf("%d transactions: %d bytes encoded, bound %d", n, len(v), bound)
			}
			if bound-len(v) > MaxBatchOverhead {
				t.Fatalf("%d transactions: bound %d is loose for %d bytes", n, bound, len(v))
			}
		}
	}
}
