package wompi

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// FuzzErrorDecoding feeds arbitrary answers to the error and response
// decoders: they never panic, an error answer always becomes an *Error with
// its status and a coherent Retryable, and no more than 256 bytes of a
// non-JSON body are kept.
func FuzzErrorDecoding(f *testing.F) {
	f.Add(400, []byte(`{"status":400,"code":"VALIDATION","message":["a","b"],"meta":{"trace_id":"t"}}`))
	f.Add(409, []byte(`{"code":"EXC_022","message":"Idempotency key reused"}`))
	f.Add(503, []byte(`<html>down</html>`))
	f.Add(200, []byte(`{"data":{"payoutId":"p","transactions":3}}`))
	f.Add(200, []byte(`{"payoutId":"p"}`))
	f.Add(500, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			return
		}
		cl := call{method: http.MethodPost, path: "/payouts"}
		e := httpError(cl, status, body)
		if e.HTTPStatus != status {
			t.Fatalf("status %d became %d", status, e.HTTPStatus)
		}
		if want := status >= 500 || status == 429; e.Retryable() != want {
			t.Fatalf("status %d: Retryable() = %v", status, e.Retryable())
		}
		for _, m := range e.Messages {
			if !strings.HasPrefix(strings.TrimSpace(string(body)), "{") && len(m) > 256 {
				t.Fatalf("kept %d bytes of a non-JSON body", len(m))
			}
		}
		var res CreatePayoutResult
		if _, err := decodeInto(cl, body, &res); err != nil {
			var we *Error
			if !errors.As(err, &we) || !we.OutcomeUnknown {
				t.Fatalf("an undecodable POST answer must be an outcome-unknown *Error, got %v", err)
			}
		}
	})
}

// FuzzParseEvent feeds arbitrary bodies and checksum headers to the webhook
// parser: it never panics, and it accepts an event only if the checksum
// really is the one computed from the event's own properties.
func FuzzParseEvent(f *testing.F) {
	const secret = "prod_events_7b193c8afd7b47949f90d443cb1e1742"
	f.Add([]byte(`{"event":"transaction.updated","data":{"transaction":{"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","status":"FAILED","amountInCents":7500000}},"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},"timestamp":1747673128600}`), "")
	f.Add([]byte(`{"event":"payout.updated","data":{"payout":{"id":"x"}},"signature":{"properties":["payout.id"]},"timestamp":1}`), "00")
	f.Add([]byte(`not json`), "abc")
	// Issue 15: forged events built from the genuine vector, and an
	// amplification body.
	vec := `{"event":"transaction.updated","data":{"transaction":{"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","status":"FAILED","amountInCents":7500000}},"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},"timestamp":1747673128600}`
	f.Add([]byte(strings.Replace(vec, `"status":"FAILED"`, `"status":"FAILED","ID":"other","Status":"CANCELLED"`, 1)), "")
	f.Add([]byte(strings.Replace(vec, `"status":"FAILED"`, `"status":"FAILED","status":"FAILED"`, 1)), "")
	f.Add([]byte(strings.Replace(strings.Replace(vec, `"transaction.updated"`, `"payout.updated"`, 1), `"data":{`, `"data":{"payout":{"id":"p","status":"TOTAL_PAYMENT","amountInCents":1},`, 1)), "")
	f.Add(amplificationBody(50<<10, 400), "")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		ev, err := ParseEvent(body, header, secret)
		if err != nil {
			if ev != nil {
				t.Fatal("an event returned with an error")
			}
			return
		}
		// Accepted: a known event signs its entity's id, status and
		// amount, and decodes to exactly the signed values.
		if entity, _, ok := entityOf(ev.Event); ok {
			for _, p := range []string{"id", "status", "amountInCents"} {
				if !slices.Contains(ev.Signature.Properties, entity+"."+p) {
					t.Fatalf("accepted %s without signing %s.%s", ev.Event, entity, p)
				}
			}
			if (ev.Transaction == nil) == (ev.Payout == nil) {
				t.Fatalf("accepted %s with transaction %v and payout %v", ev.Event, ev.Transaction, ev.Payout)
			}
		}
		// Accepted: the checksum must verify again, and a different secret
		// must not.
		if VerifyEvent(body, header, secret) != nil {
			t.Fatal("accepted once, refused the second time")
		}
		if VerifyEvent(body, header, secret+"x") == nil {
			t.Fatal("accepted under a wrong secret")
		}
	})
}

// FuzzValidate checks the validator on arbitrary field values: it never
// panics, every violation has a known reason and a message that does not
// repeat the personal data it is about, and a request it accepts really
// meets the documented rules.
func FuzzValidate(f *testing.F) {
	f.Add("req-1", "acc", "PROVIDERS", "CC", "1000000000", "Ana", "a@b.co", "1007", "AHORROS", "12345678", int64(100), "COP", int64(0), "", int32(0))
	f.Add("", " ", "X", "NIT", "900123456-7", "", "@", "9999", "CDT", "0000000", int64(-1), "USD", int64(1), "WEEK", int32(4))
	f.Fuzz(func(t *testing.T, id, acct, ptype, ltype, lid, name, email, bank, atype, anum string, amount int64, cur string, dispOffsetH int64, interval string, months int32) {
		r := payout.Request{RequestID: id, OriginAccountID: acct, PaymentType: payout.PaymentType(ptype),
			Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalIDType(ltype), LegalID: lid, Name: name, Email: email, BankCode: bank,
				AccountType: payout.AccountType(atype), AccountNumber: anum},
			AmountInCents: amount, Currency: cur, RequestedAt: testNow}
		if dispOffsetH != 0 {
			d := testNow.Add(time.Duration(dispOffsetH%10000) * time.Hour)
			r.DispersionDatetime = &d
		}
		if interval != "" {
			r.Recurring = &payout.Recurring{Interval: payout.Interval(interval), Months: months}
		}
		vs := Validate(&r, testNow)
		known := map[payout.Reason]bool{payout.ReasonInvalidRequestID: true, payout.ReasonInvalidOriginAccount: true, payout.ReasonInvalidPaymentType: true,
			payout.ReasonInvalidAmount: true, payout.ReasonAmountOverLimit: true, payout.ReasonInvalidCurrency: true, payout.ReasonInvalidLegalIDType: true,
			payout.ReasonInvalidLegalID: true, payout.ReasonInvalidAccountType: true, payout.ReasonInvalidAccountNumber: true, payout.ReasonUnknownBankCode: true,
			payout.ReasonInvalidBankID: true, payout.ReasonInvalidEmail: true, payout.ReasonInvalidName: true, payout.ReasonInvalidDispersion: true, payout.ReasonInvalidRecurring: true}
		for _, v := range vs {
			if !known[v.Reason] || v.Message == "" {
				t.Fatalf("violation %+v", v)
			}
		}
		if vs != nil {
			return
		}
		if !payout.ValidReference(r.RequestID) || r.AmountInCents <= 0 || r.Currency != "COP" || !ValidAccountNumber(anum) ||
			!payout.ValidEmail(email) || (r.Recurring != nil && r.DispersionDatetime == nil) {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		if _, ok := BankByCode(bank); !ok {
			t.Fatalf("accepted unknown bank code %q", bank)
		}
	})
}
