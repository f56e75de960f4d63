package localrun

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// TestNextMatchesTheReference holds Next, which builds a request's strings
// in one allocation, to the plain version it replaced (nextReference,
// below): the same requests, drawn in the same order from the seed, for
// every kind of every mix, the rails' included.
func TestNextMatchesTheReference(t *testing.T) {
	now := time.Date(2026, 12, 5, 15, 4, 5, 0, time.UTC)
	mixes := map[string]Mix{
		"load":         LoadMix,
		"default":      DefaultMix,
		"smartfastpay": {SmartFastPay: 100},
		"wepayout":     {WEpayout: 100},
		"every kind":   {Scheduled: 10, Recurring: 10, Invalid: 15, BankFails: 15, Cancelled: 10, LowBalance: 10, SmartFastPay: 10, WEpayout: 10},
	}
	for name, mix := range mixes {
		for _, seed := range []uint64{1, 7, 1 << 40} {
			got := NewMarketplace("run-"+name, seed, mix, func() time.Time { return now })
			want := NewMarketplace("run-"+name, seed, mix, func() time.Time { return now })
			kinds := map[Kind]int{}
			for i := range 20_000 {
				var g, w payout.Request
				gk, wk := got.Next(i, &g), want.nextReference(i, &w)
				if gk != wk || !reflect.DeepEqual(g, w) {
					t.Fatalf("%s, seed %d, request %d: Next gives %s %+v, want %s %+v", name, seed, i, gk, g, wk, w)
				}
				kinds[gk]++
			}
			for k := range numKinds {
				if share := mixShare(mix, k); share > 0 && kinds[k] == 0 {
					t.Fatalf("%s, seed %d: no request of kind %s in 20,000", name, seed, k)
				}
			}
		}
	}
}

// mixShare is kind k's share in mix (immediate: the rest).
func mixShare(mix Mix, k Kind) int {
	shares := []int{0, mix.Scheduled, mix.Recurring, mix.Invalid, mix.BankFails, mix.Cancelled, mix.LowBalance, mix.SmartFastPay, mix.WEpayout}
	if k == KindImmediate {
		rest := 100
		for _, s := range shares {
			rest -= s
		}
		return rest
	}
	return shares[k]
}

func TestAppendPadded(t *testing.T) {
	for _, c := range []struct {
		v     int64
		width int
	}{{0, 7}, {5, 2}, {42, 2}, {123, 2}, {9_999_999, 7}, {1234, 7}, {10_000_000_005, 11}, {0, 1}} {
		if got, want := string(appendPadded([]byte("x"), c.v, c.width)), fmt.Sprintf("x%0*d", c.width, c.v); got != want {
			t.Errorf("appendPadded(%d, %d) = %q, want %q", c.v, c.width, got, want)
		}
	}
}

// nextReference is Next as it was before its strings shared one
// allocation: the reference TestNextMatchesTheReference holds Next to.
func (m *Marketplace) nextReference(i int, r *payout.Request) Kind {
	k := m.kind()
	now := m.Now()
	*r = payout.Request{
		RequestID:       m.RequestID(i),
		OriginAccountID: wompitest.AccountMain,
		PaymentType:     paymentTypes[i%len(paymentTypes)],
		Beneficiary: payout.Beneficiary{
			LegalIDType:   payout.LegalCC,
			LegalID:       strconv.Itoa(10_000_000 + m.rng.IntN(89_999_999)),
			Name:          firstNames[i%len(firstNames)] + " Payee " + strconv.Itoa(i),
			Email:         "payee" + strconv.Itoa(i) + "@example.co",
			BankCode:      bankCodes[m.rng.IntN(len(bankCodes))],
			AccountType:   payout.AccountAhorros,
			AccountNumber: fmt.Sprintf("%d%07d4", 3+m.rng.IntN(6), m.rng.IntN(10_000_000)),
		},
		AmountInCents: int64(50_000 + m.rng.IntN(5_000_000)), // $500 to $50,500
		Currency:      rail.Currency(rail.Wompi),
		RequestedAt:   now,
	}
	if i%3 == 1 {
		r.OriginAccountID = wompitest.AccountSecondary
		r.Beneficiary.AccountType = payout.AccountCorriente
	}
	switch k {
	case KindScheduled:
		r.DispersionDatetime = tomorrowAtNine(now)
	case KindRecurring:
		r.DispersionDatetime = tomorrowAtNine(now)
		r.Recurring = &payout.Recurring{Interval: payout.IntervalMonth, Months: 3}
	case KindInvalid:
		switch i % 4 {
		case 0:
			r.Beneficiary.AccountNumber = "0000000"
		case 1:
			r.Beneficiary.Email = "not-an-email"
		case 2:
			r.AmountInCents = 0
		default:
			r.Beneficiary.BankCode = "9999"
		}
	case KindBankFails:
		an := r.Beneficiary.AccountNumber
		r.Beneficiary.AccountNumber = an[:len(an)-3] + failSuffixes[i%len(failSuffixes)]
	case KindCancelled:
		r.Beneficiary.AccountNumber = "999" + r.Beneficiary.AccountNumber[3:]
	case KindLowBalance:
		r.OriginAccountID = wompitest.AccountLow
	case KindSmartFastPay:
		// SmartFastPay: an 11-digit document and a Colombian mobile; the
		// phone's last two digits steer the simulator (13: failed).
		name := smartFastPayRail
		r.Rail = &name
		r.Beneficiary.LegalID = fmt.Sprintf("%011d", 10_000_000_000+int64(m.rng.IntN(89_999_999))*100+int64(i%100))
		phone := fmt.Sprintf("5730%06d%02d", m.rng.IntN(1_000_000), sfpPhoneEndings[i%len(sfpPhoneEndings)])
		r.Beneficiary.Phone = &phone
	case KindWEpayout:
		// WEpayout: BRL (routed by currency), a CPF and a PIX key whose last
		// two digits steer the simulator (05: rejected, 06: cancelled).
		r.Currency = "BRL"
		r.AmountInCents = int64(1_000 + m.rng.IntN(500_000)) // R$10 to R$5,010
		r.Beneficiary.LegalIDType = payout.LegalCPF
		r.Beneficiary.LegalID = "52998224725"
		r.Beneficiary.BankCode, r.Beneficiary.AccountNumber = "", ""
		key := fmt.Sprintf("payee%d%02d@example.com", i, wepKeyEndings[i%len(wepKeyEndings)])
		r.Beneficiary.PixKey = &key
	}
	return k
}
