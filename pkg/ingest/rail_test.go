package ingest

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A request chooses its rail by its rail field, else by its currency
// (RAIL_ROUTES). An unknown rail, or a currency with no route, is REJECTED
// UNKNOWN_RAIL; a rail this release cannot pay through is REJECTED
// RAIL_NOT_AVAILABLE; a Wompi request is batched with the batch's rail set.
func TestRequestsChooseTheirRail(t *testing.T) {
	f := newFixture(t, 1)
	str := func(s string) *string { return &s }
	wompi := request(1, "acc-a", 0)
	named := request(2, "acc-a", 0)
	named.Rail = str("wompi")
	unknown := request(3, "acc-a", 0)
	unknown.Rail = str("paypal")
	noRoute := request(4, "acc-a", 0)
	noRoute.Currency = "USD"
	brl := request(5, "acc-a", 0)
	brl.Currency = "BRL" // routed to wepayout by default
	sfp := request(6, "acc-a", 0)
	sfp.Rail = str("smartfastpay")
	f.produce([]payout.Request{wompi, named, unknown, noRoute, brl, sfp})
	stop := f.run(f.engine("ingest-rails", nil))
	o := f.read(6)
	stop()
	o.assertExactlyOnce(t, []string{wompi.RequestID, named.RequestID}, []string{unknown.RequestID, noRoute.RequestID, brl.RequestID, sfp.RequestID})
	for id, want := range map[string]payout.Reason{unknown.RequestID: rail.ReasonUnknownRail, noRoute.RequestID: rail.ReasonUnknownRail,
		brl.RequestID: rail.ReasonRailNotAvailable, sfp.RequestID: rail.ReasonRailNotAvailable} {
		if got := *o.statuses[id][0].ReasonCode; got != string(want) {
			t.Errorf("%s rejected with %s, want %s", id, got, want)
		}
	}
	for _, b := range o.batches {
		if b.Rail == nil || *b.Rail != "wompi" {
			t.Fatalf("batch %s has rail %v, want wompi", b.BatchID, b.Rail)
		}
	}
	if st := o.statuses[wompi.RequestID][0]; st.Rail == nil || *st.Rail != "wompi" {
		t.Fatalf("BATCHED carries rail %v, want wompi", st.Rail)
	}
}

func TestParseRoutes(t *testing.T) {
	if r, err := rail.ParseRoutes(rail.DefaultRoutes); err != nil || r["COP"] != rail.Wompi || r["BRL"] != rail.WEpayout {
		t.Fatalf("default routes: %v %v", r, err)
	}
	for _, bad := range []string{"", ",", "COP", "COP=paypal", "cop=wompi", "COP=wompi,COP=smartfastpay", "COPX=wompi"} {
		if _, err := rail.ParseRoutes(bad); err == nil {
			t.Errorf("ParseRoutes(%q) accepted", bad)
		}
	}
}
