package payout

import (
	"testing"
	"time"
)

// FuzzValidate checks the validator on arbitrary field values: it never
// panics, every violation has a known reason and a message that does not
// repeat the personal data it is about, and a request it accepts really
// meets the documented rules.
func FuzzValidate(f *testing.F) {
	f.Add("req-1", "acc", "PROVIDERS", "CC", "1000000000", "Ana", "a@b.co", "1007", "AHORROS", "12345678", int64(100), "COP", int64(0), "", int32(0))
	f.Add("", " ", "X", "NIT", "900123456-7", "", "@", "9999", "CDT", "0000000", int64(-1), "USD", int64(1), "WEEK", int32(4))
	f.Fuzz(func(t *testing.T, id, acct, ptype, ltype, lid, name, email, bank, atype, anum string, amount int64, cur string, dispOffsetH int64, interval string, months int32) {
		r := Request{RequestID: id, OriginAccountID: acct, PaymentType: PaymentType(ptype),
			Beneficiary: Beneficiary{LegalIDType: LegalIDType(ltype), LegalID: lid, Name: name, Email: email, BankCode: bank,
				AccountType: AccountType(atype), AccountNumber: anum},
			AmountInCents: amount, Currency: cur, RequestedAt: testNow}
		if dispOffsetH != 0 {
			d := testNow.Add(time.Duration(dispOffsetH%10000) * time.Hour)
			r.DispersionDatetime = &d
		}
		if interval != "" {
			r.Recurring = &Recurring{Interval: Interval(interval), Months: months}
		}
		vs := Validate(&r, testNow)
		known := map[Reason]bool{ReasonInvalidRequestID: true, ReasonInvalidOriginAccount: true, ReasonInvalidPaymentType: true,
			ReasonInvalidAmount: true, ReasonAmountOverLimit: true, ReasonInvalidCurrency: true, ReasonInvalidLegalIDType: true,
			ReasonInvalidLegalID: true, ReasonInvalidAccountType: true, ReasonInvalidAccountNumber: true, ReasonUnknownBankCode: true,
			ReasonInvalidBankID: true, ReasonInvalidEmail: true, ReasonInvalidName: true, ReasonInvalidDispersion: true, ReasonInvalidRecurring: true}
		for _, v := range vs {
			if !known[v.Reason] || v.Message == "" {
				t.Fatalf("violation %+v", v)
			}
		}
		if vs != nil {
			return
		}
		if !ValidReference(r.RequestID) || r.AmountInCents <= 0 || r.Currency != "COP" || !ValidAccountNumber(anum) ||
			!ValidEmail(email) || (r.Recurring != nil && r.DispersionDatetime == nil) {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		if _, ok := BankByCode(bank); !ok {
			t.Fatalf("accepted unknown bank code %q", bank)
		}
	})
}
