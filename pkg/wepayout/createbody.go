package wepayout

import (
	"github.com/wompi-payouts/pipeline/pkg/plainjson"
)

// appendCreateBody appends json.Marshal(r)'s bytes to dst: CreatePayment's
// body without reflection (json.Marshal cost about 6 µs per payout in the
// WEpayout load run). Strings go through plainjson.AppendString, which
// writes json.Marshal's own escapes (HTML characters, U+2028/U+2029,
// control bytes, invalid UTF-8 as \ufffd); the amount is Cents'
// MarshalJSON text; an omitempty field is left out when it is empty or nil,
// as json.Marshal leaves it out.
//
// It declines (ok false, dst unchanged) a nil r, and a merchant_id other
// than an integer literal without a sign or a leading zero: json.Marshal
// writes an empty json.Number as 0 and fails on a text that is not a JSON
// number, and CreatePayment calls it then. NewCreatePaymentRequest's
// bodies always take this path (TestCreateBodyFastPath).
// FuzzCreateBodyMatchesMarshal holds it to json.Marshal byte for byte, and
// TestCreateBodyKnowsEveryField fails when CreatePaymentRequest gains a
// field it does not write.
func appendCreateBody(dst []byte, r *CreatePaymentRequest) (_ []byte, ok bool) {
	if r == nil || r.MerchantID != nil && !plainMerchantID(string(*r.MerchantID)) {
		return dst, false
	}
	dst = append(dst, `{"payment_method":`...)
	dst = plainjson.AppendString(dst, r.PaymentMethod)
	dst = append(dst, `,"currency":`...)
	dst = plainjson.AppendString(dst, r.Currency)
	dst = append(dst, `,"country":`...)
	dst = plainjson.AppendString(dst, r.Country)
	dst = append(dst, `,"amount":`...)
	dst = appendReais(dst, int64(r.Amount))
	dst = append(dst, `,"invoice":`...)
	dst = plainjson.AppendString(dst, r.Invoice)
	dst = append(dst, `,"beneficiary":{"name":`...)
	dst = plainjson.AppendString(dst, r.Beneficiary.Name)
	dst = append(dst, `,"document":{"type":`...)
	dst = plainjson.AppendString(dst, r.Beneficiary.Document.Type)
	dst = append(dst, `,"number":`...)
	dst = plainjson.AppendString(dst, r.Beneficiary.Document.Number)
	dst = append(dst, "}}"...)
	if r.PIX != nil {
		dst = append(dst, `,"pix":{"pix_key":`...)
		dst = plainjson.AppendString(dst, r.PIX.Key)
		dst = append(dst, '}')
	}
	dst = appendOptional(dst, `,"bank_code":`, r.BankCode)
	dst = appendOptional(dst, `,"bank_branch":`, r.BankBranch)
	dst = appendOptional(dst, `,"bank_branch_digit":`, r.BankBranchDigit)
	dst = appendOptional(dst, `,"account":`, r.Account)
	dst = appendOptional(dst, `,"account_digit":`, r.AccountDigit)
	dst = appendOptional(dst, `,"account_type":`, r.AccountType)
	if r.MerchantID != nil {
		dst = append(dst, `,"merchant_id":`...)
		dst = append(dst, *r.MerchantID...)
	}
	dst = appendOptional(dst, `,"description":`, r.Description)
	dst = appendOptional(dst, `,"notification_url":`, r.NotificationURL)
	return append(dst, '}'), true
}

// appendOptional appends an omitempty string member: key (with its comma
// and colon) and s, or nothing when s is empty.
func appendOptional(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, key...)
	return plainjson.AppendString(dst, s)
}

// plainMerchantID reports whether json.Marshal writes the json.Number s as
// s itself: one or more digits, without a leading zero. Config takes digits only
// (allDigits), so "0123" reaches json.Marshal, which refuses it.
func plainMerchantID(s string) bool {
	return allDigits(s) && (s[0] != '0' || len(s) == 1)
}
