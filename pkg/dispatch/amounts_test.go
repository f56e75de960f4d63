package dispatch

import (
	"context"
	"math/big"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A WEpayout batch of three payees of 6,148,914,691,236,517,206 cents each
// (what an ingest without WEpayout's maximum batched together, its total
// wrapped to 2 cents) was reserved against the account's daily limit as
// 2 cents and posted. The reservation's sum is capped instead of wrapping
// (addCapped): no daily limit grants it, and nothing is posted.
func TestWrappedBatchTotalIsNeverReservedSmall(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t) // wepayout
	if r.name != rail.WEpayout {
		t.Fatalf("rail %s", r.name)
	}
	f := newFixture(t, fixtureOpt{})
	const each = int64(6148914691236517206)
	amounts := map[string]int64{"wrap-0": each, "wrap-1": each, "wrap-2": each}
	b := onRail(r, batch("wrap", amounts, "wrap-0", "wrap-1", "wrap-2"))
	true_ := new(big.Int)
	for _, tx := range b.Transactions {
		true_.Add(true_, big.NewInt(tx.AmountInCents))
	}
	t.Logf("batch total as carried %d cents; true sum %s cents", b.TotalAmountInCents, true_)
	e := r.engine(f, nil)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "every payee ends its dispatch", func() bool {
		idx := byStatus(f.statuses())
		for _, tx := range b.Transactions {
			st := idx[tx.RequestID]
			if len(st[payout.StatusSubmitted])+len(st[payout.StatusRejected])+len(st[payout.StatusDeferred]) == 0 {
				return false
			}
		}
		return true
	})
	_ = stop()
	idx := byStatus(f.statuses())
	posted := 0
	for _, tx := range b.Transactions {
		for st, ss := range idx[tx.RequestID] {
			for _, s := range ss {
				t.Logf("%s: %s reason=%v msg=%v", tx.RequestID, st, strOf(s.ReasonCode), strOf(s.ReasonMessage))
				if st == payout.StatusSubmitted || st == payout.StatusRejected && s.ReasonCode != nil && *s.ReasonCode != string(payout.ReasonDailyLimit) {
					posted++
				}
			}
		}
	}
	day := payout.DayIn(f.clock.Now(), rail.Location(rail.WEpayout))
	u, err := e.budget.Usage(context.Background(), rail.WEpayout, day.String(), b.OriginAccountID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wepayout budget on %s for %s: %+v", day, b.OriginAccountID, u)
	if posted > 0 {
		t.Errorf("%d payees of %d cents each went to WEpayout's POST under a daily reservation of %d cents (true total %s cents)",
			posted, each, u.AmountInCents, true_)
	}
}

func strOf(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
