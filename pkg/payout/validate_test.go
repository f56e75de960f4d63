package payout

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 21, 10, 0, 0, 0, Bogota)

func ptr[T any](v T) *T { return &v }

func validRequest() Request {
	return Request{
		RequestID:       "req-0001",
		OriginAccountID: "acc-main-01",
		PaymentType:     PaymentProviders,
		Beneficiary: Beneficiary{
			LegalIDType:   LegalCC,
			LegalID:       "1000000000",
			Name:          "María Pérez",
			Email:         "maria.perez@example.co",
			BankCode:      "1007",
			AccountType:   AccountAhorros,
			AccountNumber: "12345678901",
		},
		AmountInCents: 1_000_000,
		Currency:      "COP",
		RequestedAt:   testNow,
	}
}

func TestValidateTable(t *testing.T) {
	tomorrow := testNow.Add(24 * time.Hour)
	lateTonight := time.Date(2026, 11, 21, 23, 59, 0, 0, Bogota)
	cases := []struct {
		name   string
		mutate func(r *Request)
		want   []Reason // nil: valid
	}{
		{"valid immediate", func(r *Request) {}, nil},
		{"valid scheduled tomorrow", func(r *Request) { r.DispersionDatetime = &tomorrow }, nil},
		{"valid recurring", func(r *Request) {
			r.DispersionDatetime = &tomorrow
			r.Recurring = &Recurring{Interval: IntervalMonth, Months: 6}
		}, nil},
		{"valid bankId instead of code", func(r *Request) {
			r.Beneficiary.BankCode = ""
			r.Beneficiary.BankID = ptr("0f8fad5b-d9cb-469f-a165-70867728950e")
		}, nil},
		{"valid NIT", func(r *Request) {
			r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = LegalNIT, "900123456"
		}, nil},
		{"valid accented name of 100 bytes", func(r *Request) { r.Beneficiary.Name = strings.Repeat("ñ", 50) }, nil},
		{"valid company name", func(r *Request) { r.Beneficiary.Name = "Inversiones López & Cía. S.A.S. (Bogotá)" }, nil},
		{"valid passport", func(r *Request) { r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = LegalPP, "AB123456" }, nil},
		{"valid 64-char request id", func(r *Request) { r.RequestID = strings.Repeat("a", 64) }, nil},
		{"valid deposito electronico", func(r *Request) { r.Beneficiary.AccountType = AccountDepositoElectronico }, nil},

		{"empty request id", func(r *Request) { r.RequestID = "" }, []Reason{ReasonInvalidRequestID}},
		{"65-char request id", func(r *Request) { r.RequestID = strings.Repeat("a", 65) }, []Reason{ReasonInvalidRequestID}},
		{"request id with underscore", func(r *Request) { r.RequestID = "req_1" }, []Reason{ReasonInvalidRequestID}},
		{"empty origin account", func(r *Request) { r.OriginAccountID = "" }, []Reason{ReasonInvalidOriginAccount}},
		{"origin account with space", func(r *Request) { r.OriginAccountID = "acc 1" }, []Reason{ReasonInvalidOriginAccount}},
		{"unknown payment type", func(r *Request) { r.PaymentType = "BONUS" }, []Reason{ReasonInvalidPaymentType}},
		{"zero amount", func(r *Request) { r.AmountInCents = 0 }, []Reason{ReasonInvalidAmount}},
		{"negative amount", func(r *Request) { r.AmountInCents = -5 }, []Reason{ReasonInvalidAmount}},
		{"amount over the daily limit", func(r *Request) { r.AmountInCents = DefaultDailyLimitCents + 1 }, []Reason{ReasonAmountOverLimit}},
		{"USD", func(r *Request) { r.Currency = "USD" }, []Reason{ReasonInvalidCurrency}},
		{"empty currency", func(r *Request) { r.Currency = "" }, []Reason{ReasonInvalidCurrency}},
		{"unknown legal id type", func(r *Request) { r.Beneficiary.LegalIDType = "XX" }, []Reason{ReasonInvalidLegalIDType}},
		{"CC with letters", func(r *Request) { r.Beneficiary.LegalID = "10A0000" }, []Reason{ReasonInvalidLegalID}},
		{"CC too long", func(r *Request) { r.Beneficiary.LegalID = "12345678901" }, []Reason{ReasonInvalidLegalID}},
		{"CC all zeros", func(r *Request) { r.Beneficiary.LegalID = "0000000" }, []Reason{ReasonInvalidLegalID}},
		{"NIT bad check suffix", func(r *Request) {
			r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = LegalNIT, "900123456-X"
		}, []Reason{ReasonInvalidLegalID}},
		// Issue 17: these passed here, then the simulator answered 400 and
		// the whole batch was REJECTED.
		{"NIT with check digit", func(r *Request) {
			r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = LegalNIT, "900123456-7"
		}, []Reason{ReasonInvalidLegalID}},
		{"long accented name (51 ñ = 102 bytes)", func(r *Request) { r.Beneficiary.Name = strings.Repeat("ñ", 51) }, []Reason{ReasonInvalidName}},
		{"name with emoji", func(r *Request) { r.Beneficiary.Name = "Ana 😀" }, []Reason{ReasonInvalidName}},
		{"name with leading space", func(r *Request) { r.Beneficiary.Name = " Ana" }, []Reason{ReasonInvalidName}},
		{"name with angle brackets", func(r *Request) { r.Beneficiary.Name = "Ana <b>" }, []Reason{ReasonInvalidName}},
		{"CE with symbol", func(r *Request) { r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = LegalCE, "12#45" }, []Reason{ReasonInvalidLegalID}},
		{"unknown account type", func(r *Request) { r.Beneficiary.AccountType = "CDT" }, []Reason{ReasonInvalidAccountType}},
		{"account number too short", func(r *Request) { r.Beneficiary.AccountNumber = "12345" }, []Reason{ReasonInvalidAccountNumber}},
		{"account number too long", func(r *Request) { r.Beneficiary.AccountNumber = strings.Repeat("1", 21) }, []Reason{ReasonInvalidAccountNumber}},
		{"account number not numeric", func(r *Request) { r.Beneficiary.AccountNumber = "12345A789" }, []Reason{ReasonInvalidAccountNumber}},
		{"account number all zeros", func(r *Request) { r.Beneficiary.AccountNumber = "00000000" }, []Reason{ReasonInvalidAccountNumber}},
		{"unknown bank code", func(r *Request) { r.Beneficiary.BankCode = "9999" }, []Reason{ReasonUnknownBankCode}},
		{"no bank at all", func(r *Request) { r.Beneficiary.BankCode = "" }, []Reason{ReasonUnknownBankCode}},
		{"bank id not a uuid", func(r *Request) { r.Beneficiary.BankID = ptr("bancolombia") }, []Reason{ReasonInvalidBankID}},
		{"email without at", func(r *Request) { r.Beneficiary.Email = "maria.example.co" }, []Reason{ReasonInvalidEmail}},
		{"email without tld", func(r *Request) { r.Beneficiary.Email = "maria@example" }, []Reason{ReasonInvalidEmail}},
		{"email with space", func(r *Request) { r.Beneficiary.Email = "ma ria@example.co" }, []Reason{ReasonInvalidEmail}},
		{"email two ats", func(r *Request) { r.Beneficiary.Email = "a@b@example.co" }, []Reason{ReasonInvalidEmail}},
		{"empty name", func(r *Request) { r.Beneficiary.Name = "  " }, []Reason{ReasonInvalidName}},
		{"name with control char", func(r *Request) { r.Beneficiary.Name = "Ana\x00" }, []Reason{ReasonInvalidName}},
		{"name too long", func(r *Request) { r.Beneficiary.Name = strings.Repeat("a", 101) }, []Reason{ReasonInvalidName}},
		{"dispersion today", func(r *Request) { r.DispersionDatetime = &lateTonight }, []Reason{ReasonInvalidDispersion}},
		{"dispersion in the past", func(r *Request) { r.DispersionDatetime = ptr(testNow.Add(-48 * time.Hour)) }, []Reason{ReasonInvalidDispersion}},
		{"recurring without dispersion", func(r *Request) {
			r.Recurring = &Recurring{Interval: IntervalBiweek, Months: 3}
		}, []Reason{ReasonInvalidRecurring}},
		{"recurring bad months", func(r *Request) {
			r.DispersionDatetime = &tomorrow
			r.Recurring = &Recurring{Interval: IntervalBiweek, Months: 4}
		}, []Reason{ReasonInvalidRecurring}},
		{"recurring bad interval", func(r *Request) {
			r.DispersionDatetime = &tomorrow
			r.Recurring = &Recurring{Interval: "WEEK", Months: 3}
		}, []Reason{ReasonInvalidRecurring}},
		{"every failure is collected", func(r *Request) {
			r.RequestID = ""
			r.AmountInCents = 0
			r.Beneficiary.AccountNumber = "abc"
			r.Beneficiary.Email = "nope"
		}, []Reason{ReasonInvalidRequestID, ReasonInvalidAmount, ReasonInvalidAccountNumber, ReasonInvalidEmail}},
	}
	hit := map[Reason]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRequest()
			tc.mutate(&r)
			vs := Validate(&r, testNow)
			var got []Reason
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
	for _, reason := range []Reason{ReasonInvalidRequestID, ReasonInvalidOriginAccount, ReasonInvalidPaymentType, ReasonInvalidAmount,
		ReasonAmountOverLimit, ReasonInvalidCurrency, ReasonInvalidLegalIDType, ReasonInvalidLegalID, ReasonInvalidAccountType,
		ReasonInvalidAccountNumber, ReasonUnknownBankCode, ReasonInvalidBankID, ReasonInvalidEmail, ReasonInvalidName,
		ReasonInvalidDispersion, ReasonInvalidRecurring} {
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
