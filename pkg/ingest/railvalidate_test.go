package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

func strp(s string) *string { return &s }

// Each rail's requests are checked against that rail's rules: a valid
// Brazilian PIX payee passes on wepayout and fails Wompi's Colombian rules;
// a SmartFastPay payee needs its phone; single payouts take no schedule.
func TestValidateForRail(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	base := payout.Request{RequestID: "req-1", OriginAccountID: "acc-1", PaymentType: payout.PaymentProviders,
		AmountInCents: 100_000, RequestedAt: now}
	pix := base
	pix.Currency = "BRL"
	pix.Beneficiary = payout.Beneficiary{LegalIDType: payout.LegalCPF, LegalID: "52998224725", Name: "Maria Souza",
		Email: "maria@example.com", AccountType: payout.AccountAhorros, PixKey: strp("maria.souza00@example.com")}
	sfp := base
	sfp.Currency = "COP"
	sfp.Beneficiary = payout.Beneficiary{LegalIDType: payout.LegalCC, LegalID: "12345678909", Name: "Ana Gómez",
		Email: "ana@example.com", BankCode: "1007", AccountType: payout.AccountAhorros, AccountNumber: "40000000001",
		Phone: strp("573001234567")}

	if vs := validateFor(rail.WEpayout, &pix, now); vs != nil {
		t.Fatalf("valid PIX request refused on wepayout: %s", vs.Message())
	}
	if vs := validateFor(rail.Wompi, &pix, now); vs == nil {
		t.Fatal("a Brazilian PIX request passed Wompi's rules")
	}
	if vs := validateFor(rail.SmartFastPay, &sfp, now); vs != nil {
		t.Fatalf("valid SmartFastPay request refused: %s", vs.Message())
	}
	cases := []struct {
		name string
		rail rail.Name
		req  payout.Request
		mut  func(*payout.Request)
		want payout.Reason
	}{
		{"wepayout bad CPF", rail.WEpayout, pix, func(r *payout.Request) { r.Beneficiary.LegalID = "52998224724" }, wepayout.ReasonInvalidCPF},
		{"wepayout COP", rail.WEpayout, pix, func(r *payout.Request) { r.Currency = "COP" }, payout.ReasonInvalidCurrency},
		{"wepayout no pix nor bank", rail.WEpayout, pix, func(r *payout.Request) { r.Beneficiary.PixKey = nil }, wepayout.ReasonMissingPixOrBank},
		{"smartfastpay no phone", rail.SmartFastPay, sfp, func(r *payout.Request) { r.Beneficiary.Phone = nil }, smartfastpay.ReasonInvalidPhone},
		{"smartfastpay under 2.00", rail.SmartFastPay, sfp, func(r *payout.Request) { r.AmountInCents = 199 }, smartfastpay.ReasonInvalidAmount},
		{"smartfastpay scheduled", rail.SmartFastPay, sfp, func(r *payout.Request) { d := now.Add(48 * time.Hour); r.DispersionDatetime = &d }, payout.ReasonInvalidDispersion},
		{"wepayout recurring", rail.WEpayout, pix, func(r *payout.Request) { r.Recurring = &payout.Recurring{Interval: payout.IntervalMonth, Months: 3} }, payout.ReasonInvalidRecurring},
		{"envelope: bad requestId", rail.WEpayout, pix, func(r *payout.Request) { r.RequestID = "has space" }, payout.ReasonInvalidRequestID},
		{"envelope: zero amount", rail.SmartFastPay, sfp, func(r *payout.Request) { r.AmountInCents = 0 }, payout.ReasonInvalidAmount},
		// Below WEpayout's own maximum, above the daily limit every rail's
		// batches are reserved against: it was batched, then deferred by
		// the dispatcher every day, for ever.
		{"wepayout above the daily limit", rail.WEpayout, pix, func(r *payout.Request) { r.AmountInCents = 150_000_000_001 }, payout.ReasonAmountOverLimit},
	}
	for _, c := range cases {
		r := c.req
		r.Beneficiary = c.req.Beneficiary
		c.mut(&r)
		vs := validateFor(c.rail, &r, now)
		found := false
		for _, v := range vs {
			found = found || v.Reason == c.want
		}
		if !found {
			t.Errorf("%s: %v, want %s among them", c.name, vs, c.want)
		}
		if strings.Contains(vs.Message(), "52998224") || strings.Contains(vs.Message(), "maria.souza") {
			t.Errorf("%s: message carries personal data: %q", c.name, vs.Message())
		}
	}
}
