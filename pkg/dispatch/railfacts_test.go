package dispatch

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// The DLQ copy of a republished request carries its rail's currency: a
// WEpayout request's copy says BRL, a Wompi one's COP (a batch has no
// currency of its own).
func TestDuplicateCopyCarriesItsRailsCurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	wep := singleRails(t)[1](t)
	for _, c := range []struct {
		b    payout.Batch
		want string
	}{{singleBatch(wep, "dup-brl", 1), "BRL"}, {simpleBatch("dup-cop", 1), "COP"}} {
		r, err := e.duplicateRecord(&c.b, &c.b.Transactions[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		var req payout.Request
		if err := f.codec.DecodeRequest(r.Value, &req); err != nil {
			t.Fatal(err)
		}
		if req.Currency != c.want || req.Currency != rail.Currency(railName(&c.b)) {
			t.Fatalf("%s: the copy's currency is %q, want %q", c.b.BatchID, req.Currency, c.want)
		}
	}
}
