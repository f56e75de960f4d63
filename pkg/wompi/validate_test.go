package wompi

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

var testNow = time.Date(2026, 11, 21, 10, 0, 0, 0, rail.Location(rail.Wompi))

func ptr[T any](v T) *T { return &v }

func validRequest() payout.Request {
	return payout.Request{
		RequestID:       "req-0001",
		OriginAccountID: "acc-main-01",
		PaymentType:     payout.PaymentProviders,
		Beneficiary: payout.Beneficiary{
			LegalIDType:   payout.LegalCC,
			LegalID:       "1000000000",
			Name:          "María Pérez",
			Email:         "maria.perez@example.co",
			BankCode:      "1007",
			AccountType:   payout.AccountAhorros,
			AccountNumber: "12345678901",
		},
		AmountInCents: 1_000_000,
		Currency:      "COP",
		RequestedAt:   testNow,
	}
}

func TestValidateTable(t *testing.T) {
	tomorrow := testNow.Add(24 * time.Hour)
	lateTonight := time.Date(2026, 11, 21, 23, 59, 0, 0, rail.Location(rail.Wompi))
	cases := []struct {
		name   string
		mutate func(r *payout.Request)
		want   []payout.Reason // nil: valid
	}{
		{"valid immediate", func(r *payout.Request) {}, nil},
		{"valid scheduled tomorrow", func(r *payout.Request) { r.DispersionDatetime = &tomorrow }, nil},
		{"valid recurring", func(r *payout.Request) {
			r.DispersionDatetime = &tomorrow
			r.Recurring = &payout.Recurring{Interval: payout.IntervalMonth, Months: 6}
		}, nil},
		{"valid bankId instead of code", func(r *payout.Request) {
			r.Beneficiary.BankCode = ""
			r.Beneficiary.BankID = ptr("0f8fad5b-d9cb-469f-a165-70867728950e")
		}, nil},
		{"valid NIT", func(r *payout.Request) {
			r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalNIT, "900123456"
		}, nil},
		{"valid accented name of 100 bytes", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("ñ", 50) }, nil},
		{"valid company name", func(r *payout.Request) { r.Beneficiary.Name = "Inversiones López & Cía. S.A.S. (Bogotá)" }, nil},
		{"valid passport", func(r *payout.Request) { r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalPP, "AB123456" }, nil},
		{"valid 64-char request id", func(r *payout.Request) { r.RequestID = strings.Repeat("a", 64) }, nil},
		{"valid deposito electronico", func(r *payout.Request) { r.Beneficiary.AccountType = payout.AccountDepositoElectronico }, nil},

		{"empty request id", func(r *payout.Request) { r.RequestID = "" }, []payout.Reason{payout.ReasonInvalidRequestID}},
		{"65-char request id", func(r *payout.Request) { r.RequestID = strings.Repeat("a", 65) }, []payout.Reason{payout.ReasonInvalidRequestID}},
		{"request id with underscore", func(r *payout.Request) { r.RequestID = "req_1" }, []payout.Reason{payout.ReasonInvalidRequestID}},
		{"empty origin account", func(r *payout.Request) { r.OriginAccountID = "" }, []payout.Reason{payout.ReasonInvalidOriginAccount}},
		{"origin account with space", func(r *payout.Request) { r.OriginAccountID = "acc 1" }, []payout.Reason{payout.ReasonInvalidOriginAccount}},
		{"unknown payment type", func(r *payout.Request) { r.PaymentType = "BONUS" }, []payout.Reason{payout.ReasonInvalidPaymentType}},
		{"zero amount", func(r *payout.Request) { r.AmountInCents = 0 }, []payout.Reason{payout.ReasonInvalidAmount}},
		{"negative amount", func(r *payout.Request) { r.AmountInCents = -5 }, []payout.Reason{payout.ReasonInvalidAmount}},
		{"amount over the daily limit", func(r *payout.Request) { r.AmountInCents = DefaultDailyLimitCents + 1 }, []payout.Reason{payout.ReasonAmountOverLimit}},
		{"USD", func(r *payout.Request) { r.Currency = "USD" }, []payout.Reason{payout.ReasonInvalidCurrency}},
		{"empty currency", func(r *payout.Request) { r.Currency = "" }, []payout.Reason{payout.ReasonInvalidCurrency}},
		{"unknown legal id type", func(r *payout.Request) { r.Beneficiary.LegalIDType = "XX" }, []payout.Reason{payout.ReasonInvalidLegalIDType}},
		{"CC with letters", func(r *payout.Request) { r.Beneficiary.LegalID = "10A0000" }, []payout.Reason{payout.ReasonInvalidLegalID}},
		{"CC too long", func(r *payout.Request) { r.Beneficiary.LegalID = "12345678901" }, []payout.Reason{payout.ReasonInvalidLegalID}},
		{"CC all zeros", func(r *payout.Request) { r.Beneficiary.LegalID = "0000000" }, []payout.Reason{payout.ReasonInvalidLegalID}},
		{"NIT bad check suffix", func(r *payout.Request) {
			r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalNIT, "900123456-X"
		}, []payout.Reason{payout.ReasonInvalidLegalID}},
		// Issue 17: these passed here, then the simulator answered 400 and
		// the whole batch was REJECTED.
		{"NIT with check digit", func(r *payout.Request) {
			r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalNIT, "900123456-7"
		}, []payout.Reason{payout.ReasonInvalidLegalID}},
		{"long accented name (51 ñ = 102 bytes)", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("ñ", 51) }, []payout.Reason{payout.ReasonInvalidName}},
		{"name with emoji", func(r *payout.Request) { r.Beneficiary.Name = "Ana 😀" }, []payout.Reason{payout.ReasonInvalidName}},
		{"name with leading space", func(r *payout.Request) { r.Beneficiary.Name = " Ana" }, []payout.Reason{payout.ReasonInvalidName}},
		{"name with angle brackets", func(r *payout.Request) { r.Beneficiary.Name = "Ana <b>" }, []payout.Reason{payout.ReasonInvalidName}},
		{"CE with symbol", func(r *payout.Request) { r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalCE, "12#45" }, []payout.Reason{payout.ReasonInvalidLegalID}},
		{"unknown account type", func(r *payout.Request) { r.Beneficiary.AccountType = "CDT" }, []payout.Reason{payout.ReasonInvalidAccountType}},
		{"account number too short", func(r *payout.Request) { r.Beneficiary.AccountNumber = "12345" }, []payout.Reason{payout.ReasonInvalidAccountNumber}},
		{"account number too long", func(r *payout.Request) { r.Beneficiary.AccountNumber = strings.Repeat("1", 21) }, []payout.Reason{payout.ReasonInvalidAccountNumber}},
		{"account number not numeric", func(r *payout.Request) { r.Beneficiary.AccountNumber = "12345A789" }, []payout.Reason{payout.ReasonInvalidAccountNumber}},
		{"account number all zeros", func(r *payout.Request) { r.Beneficiary.AccountNumber = "00000000" }, []payout.Reason{payout.ReasonInvalidAccountNumber}},
		{"unknown bank code", func(r *payout.Request) { r.Beneficiary.BankCode = "9999" }, []payout.Reason{payout.ReasonUnknownBankCode}},
		{"no bank at all", func(r *payout.Request) { r.Beneficiary.BankCode = "" }, []payout.Reason{payout.ReasonUnknownBankCode}},
		{"bank id not a uuid", func(r *payout.Request) { r.Beneficiary.BankID = ptr("bancolombia") }, []payout.Reason{payout.ReasonInvalidBankID}},
		{"email without at", func(r *payout.Request) { r.Beneficiary.Email = "maria.example.co" }, []payout.Reason{payout.ReasonInvalidEmail}},
		{"email without tld", func(r *payout.Request) { r.Beneficiary.Email = "maria@example" }, []payout.Reason{payout.ReasonInvalidEmail}},
		{"email with space", func(r *payout.Request) { r.Beneficiary.Email = "ma ria@example.co" }, []payout.Reason{payout.ReasonInvalidEmail}},
		{"email two ats", func(r *payout.Request) { r.Beneficiary.Email = "a@b@example.co" }, []payout.Reason{payout.ReasonInvalidEmail}},
		{"empty name", func(r *payout.Request) { r.Beneficiary.Name = "  " }, []payout.Reason{payout.ReasonInvalidName}},
		{"name with control char", func(r *payout.Request) { r.Beneficiary.Name = "Ana\x00" }, []payout.Reason{payout.ReasonInvalidName}},
		{"name too long", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("a", 101) }, []payout.Reason{payout.ReasonInvalidName}},
		{"dispersion today", func(r *payout.Request) { r.DispersionDatetime = &lateTonight }, []payout.Reason{payout.ReasonInvalidDispersion}},
		{"dispersion in the past", func(r *payout.Request) { r.DispersionDatetime = ptr(testNow.Add(-48 * time.Hour)) }, []payout.Reason{payout.ReasonInvalidDispersion}},
		{"recurring without dispersion", func(r *payout.Request) {
			r.Recurring = &payout.Recurring{Interval: payout.IntervalBiweek, Months: 3}
		}, []payout.Reason{payout.ReasonInvalidRecurring}},
		{"recurring bad months", func(r *payout.Request) {
			r.DispersionDatetime = &tomorrow
			r.Recurring = &payout.Recurring{Interval: payout.IntervalBiweek, Months: 4}
		}, []payout.Reason{payout.ReasonInvalidRecurring}},
		{"recurring bad interval", func(r *payout.Request) {
			r.DispersionDatetime = &tomorrow
			r.Recurring = &payout.Recurring{Interval: "WEEK", Months: 3}
		}, []payout.Reason{payout.ReasonInvalidRecurring}},
		{"every failure is collected", func(r *payout.Request) {
			r.RequestID = ""
			r.AmountInCents = 0
			r.Beneficiary.AccountNumber = "abc"
			r.Beneficiary.Email = "nope"
		}, []payout.Reason{payout.ReasonInvalidRequestID, payout.ReasonInvalidAmount, payout.ReasonInvalidAccountNumber, payout.ReasonInvalidEmail}},
	}
	hit := map[payout.Reason]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRequest()
			tc.mutate(&r)
			vs := Validate(&r, testNow)
			var got []payout.Reason
			for _, v := range vs {
				got = append(got, v.Reason)
				hit[v.Reason] = true
				if v.Message == "" {
					t.Errorf("%s has no message", v.Reason)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("reasons = %v, want %v", got, tc.want)
			}
		})
	}
	for _, reason := range []payout.Reason{payout.ReasonInvalidRequestID, payout.ReasonInvalidOriginAccount, payout.ReasonInvalidPaymentType, payout.ReasonInvalidAmount,
		payout.ReasonAmountOverLimit, payout.ReasonInvalidCurrency, payout.ReasonInvalidLegalIDType, payout.ReasonInvalidLegalID, payout.ReasonInvalidAccountType,
		payout.ReasonInvalidAccountNumber, payout.ReasonUnknownBankCode, payout.ReasonInvalidBankID, payout.ReasonInvalidEmail, payout.ReasonInvalidName,
		payout.ReasonInvalidDispersion, payout.ReasonInvalidRecurring} {
		if !hit[reason] {
			t.Errorf("no case hits %s", reason)
		}
	}
}

func TestViolationMessagesHoldNoPersonalData(t *testing.T) {
	r := validRequest()
	r.Beneficiary.AccountNumber = "98765X4321"
	r.Beneficiary.LegalID = "55512ABC"
	r.Beneficiary.Email = "secret.person@@example.co"
	msg := Validate(&r, testNow).Message()
	for _, pii := range []string{"98765X4321", "55512ABC", "secret.person"} {
		if strings.Contains(msg, pii) {
			t.Fatalf("message %q leaks %q", msg, pii)
		}
	}
	if !strings.Contains(msg, "INVALID_ACCOUNT_NUMBER: ") || !strings.Contains(msg, "; INVALID_EMAIL") {
		t.Fatalf("message %q does not list every violation", msg)
	}
}

func TestValidateValidRequestDoesNotAllocate(t *testing.T) {
	r := validRequest()
	if n := testing.AllocsPerRun(100, func() { _ = Validate(&r, testNow) }); n != 0 {
		t.Fatalf("Validate of a valid request allocates %v times", n)
	}
}

func BenchmarkValidate(b *testing.B) {
	r := validRequest()
	b.ReportAllocs()
	for b.Loop() {
		if Validate(&r, testNow) != nil {
			b.Fatal("invalid")
		}
	}
}
