package ctl

import (
	"strings"
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

// stuck names a single payout's rail, its provider's id and its request,
// and shows its request's status (not its batch's): a SmartFastPay payee
// whose phone ends in 98 stays on hold at the simulator.
func TestStuckNamesASinglePayoutsRail(t *testing.T) {
	k := startStack(t, time.Hour)
	k.env["SMARTFASTPAY_BASE_URL"] = k.s.SmartFastPay.URL()
	k.env["SMARTFASTPAY_CLIENT_ID"], k.env["SMARTFASTPAY_CLIENT_SECRET"] = sfptest.DefaultClientID, sfptest.DefaultClientSecret
	str := func(s string) *string { return &s }
	r := request("ctl-sfp-held", wompitest.AccountMain, 120_000, "12345678909")
	r.Rail = str("smartfastpay")
	r.Beneficiary.Phone = str("573001234598")
	k.publish(r)
	tr := k.waitStatus(r.RequestID, payout.StatusPending)
	var providerID string
	for _, p := range tr.Provider {
		if p.Rail == "smartfastpay" {
			providerID = p.TransactionID
		}
	}
	if providerID == "" {
		t.Fatalf("trace shows no SmartFastPay payout: %+v", tr.Provider)
	}
	var s StuckResult
	decode(t, k.run("stuck", "--older-than", "0s", "--output", "json"), &s)
	it, ok := stuckPayouts(s)["smartfastpay:"+providerID]
	if !ok {
		t.Fatalf("the held payout is not listed: %+v", s.Items)
	}
	if it.Rail != "smartfastpay" || it.PayoutID != providerID || it.RequestID != r.RequestID || it.Status != "PENDING" ||
		it.AmountInCents != 120_000 || it.Transactions != 1 || it.Age < 0 {
		t.Fatalf("stuck item %+v", it)
	}
	if out := k.run("stuck", "--older-than", "0s"); !strings.Contains(out, "smartfastpay") {
		t.Fatalf("table:\n%s", out)
	}
}
