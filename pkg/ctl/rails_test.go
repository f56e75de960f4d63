package ctl

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// trace and balance answer per rail: a request paid through SmartFastPay
// and one through WEpayout are found at their provider by requestId, and
// balance lists each enabled rail's balance.
func TestTraceAndBalanceAskTheSingleRails(t *testing.T) {
	k := startStack(t, time.Hour)
	k.env["SMARTFASTPAY_BASE_URL"] = k.s.SmartFastPay.URL()
	k.env["SMARTFASTPAY_CLIENT_ID"], k.env["SMARTFASTPAY_CLIENT_SECRET"] = sfptest.DefaultClientID, sfptest.DefaultClientSecret
	k.env["WEPAYOUT_BASE_URL"], k.env["WEPAYOUT_API_KEY"] = k.s.WEpayout.URL(), weptest.DefaultAPIKey
	k.env["WEPAYOUT_MERCHANT_ID"] = "1234" // the simulator's default merchant
	str := func(s string) *string { return &s }
	sfp := request("ctl-sfp", wompitest.AccountMain, 150_000, "12345678909")
	sfp.Rail = str("smartfastpay")
	sfp.Beneficiary.Phone = str("573001234567")
	wep := request("ctl-wep", wompitest.AccountMain, 25_000, "52998224725")
	wep.Currency = "BRL"
	wep.Beneficiary = payout.Beneficiary{LegalIDType: payout.LegalCPF, LegalID: "52998224725", Name: "Maria Souza",
		Email: "maria@example.com", AccountType: payout.AccountAhorros, PixKey: str("maria.souza@example.com")}
	k.publish(sfp, wep)
	for _, c := range []struct {
		id, rail string
		cents    int64
	}{{"ctl-sfp", "smartfastpay", 150_000}, {"ctl-wep", "wepayout", 25_000}} {
		tr := k.waitStatus(c.id, payout.StatusApproved)
		var found bool
		for _, p := range tr.Provider {
			found = found || p.Rail == c.rail && p.Reference == c.id && p.AmountInCents == c.cents && p.TransactionID != ""
		}
		if !found {
			t.Fatalf("%s: trace shows no %s payout for it: %+v", c.id, c.rail, tr.Provider)
		}
	}
	var b BalanceResult
	decode(t, k.run("balance", "--output", "json"), &b)
	rails := map[string]int64{}
	for _, a := range b.Accounts {
		rails[a.Rail] = a.BalanceInCents
	}
	if want := k.s.WEpayout.BalanceInCents(); rails["wepayout"] != want || want == 0 {
		t.Fatalf("wepayout balance %d, the simulator holds %d (%+v)", rails["wepayout"], want, b.Accounts)
	}
	if _, ok := rails["smartfastpay"]; !ok || rails["wompi"] == 0 {
		t.Fatalf("balance does not list every enabled rail: %+v", b.Accounts)
	}
}
