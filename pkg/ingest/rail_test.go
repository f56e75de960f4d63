package ingest

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// A request chooses its rail by its rail field, else by its currency
// (RAIL_ROUTES). An unknown rail, or a currency with no route, is REJECTED
// UNKNOWN_RAIL; a request is checked against its rail's rules; batches
// group by rail, and every event names it.
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
	brl.Beneficiary = payout.Beneficiary{LegalIDType: payout.LegalCPF, LegalID: "52998224725", Name: "Maria Souza",
		Email: "maria@example.com", AccountType: payout.AccountAhorros, PixKey: str("maria.souza@example.com")}
	sfp := request(6, "acc-a", 0)
	sfp.Rail = str("smartfastpay")
	sfp.Beneficiary.LegalID = "12345678909"
	sfp.Beneficiary.Phone = str("573001234567")
	sfpBad := request(7, "acc-a", 0)
	sfpBad.Rail = str("smartfastpay") // no phone
	sfpBad.Beneficiary.LegalID = "12345678909"
	brlAsWompi := request(8, "acc-a", 0)
	brlAsWompi.Currency = "BRL"
	brlAsWompi.Rail = str("wompi") // Wompi pays COP only
	f.produce([]payout.Request{wompi, named, unknown, noRoute, brl, sfp, sfpBad, brlAsWompi})
	stop := f.run(f.engine("ingest-rails", nil))
	o := f.read(8)
	stop()
	o.assertExactlyOnce(t, []string{wompi.RequestID, named.RequestID, brl.RequestID, sfp.RequestID},
		[]string{unknown.RequestID, noRoute.RequestID, sfpBad.RequestID, brlAsWompi.RequestID})
	for id, want := range map[string]payout.Reason{unknown.RequestID: rail.ReasonUnknownRail, noRoute.RequestID: rail.ReasonUnknownRail,
		sfpBad.RequestID: smartfastpay.ReasonInvalidPhone, brlAsWompi.RequestID: payout.ReasonInvalidCurrency} {
		if got := *o.statuses[id][0].ReasonCode; got != string(want) {
			t.Errorf("%s rejected with %s, want %s", id, got, want)
		}
	}
	want := map[string]string{wompi.RequestID: "wompi", named.RequestID: "wompi", brl.RequestID: "wepayout", sfp.RequestID: "smartfastpay"}
	for _, b := range o.batches {
		for _, tx := range b.Transactions {
			if b.Rail == nil || *b.Rail != want[tx.RequestID] {
				t.Fatalf("%s is in a batch of rail %v, want %s", tx.RequestID, b.Rail, want[tx.RequestID])
			}
		}
	}
	for id, r := range want {
		if st := o.statuses[id][0]; st.Rail == nil || *st.Rail != r {
			t.Fatalf("%s: BATCHED carries rail %v, want %s", id, st.Rail, r)
		}
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
