package smartfastpay

import (
	"strings"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// This rail's validation reasons. The shared ones keep payout's codes.
const (
	ReasonInvalidCurrency payout.Reason = payout.ReasonInvalidCurrency // not COP
	ReasonInvalidAmount   payout.Reason = payout.ReasonInvalidAmount   // under 2.00 COP, or over decimal(10,2)
	ReasonInvalidName     payout.Reason = payout.ReasonInvalidName     // not 3-150 characters
	ReasonInvalidEmail    payout.Reason = payout.ReasonInvalidEmail    // not a plausible address
	// ReasonInvalidDocument: legalId is not the 11 digits SmartFastPay's
	// document takes.
	ReasonInvalidDocument payout.Reason = "INVALID_DOCUMENT"
	// ReasonInvalidPhone: phone is not 57 and 10 digits.
	ReasonInvalidPhone payout.Reason = "INVALID_PHONE"
)

// The documented bounds of a create [seed, doc].
const (
	MinAmountInCents = 200           // amount min 2 (COP)
	MaxAmountInCents = 9_999_999_999 // decimal(10,2)
	documentLen      = 11
	phoneLen         = 12
	phonePrefix      = "57"
	minName, maxName = 3, 150
)

// The callback's documented length, in characters [seed]: a create with a
// callback outside it is refused, so the setting is checked at start.
const MinCallbackLen, MaxCallbackLen = 30, 250

// Validate checks a payout against this rail's documented rules and returns
// every violation in a stable order; nil means payable here. Messages never
// contain the personal data they are about.
func Validate(currency string, amountInCents int64, p rail.Payee) payout.Violations {
	var vs payout.Violations
	add := func(r payout.Reason, msg string) { vs = append(vs, payout.Violation{Reason: r, Message: msg}) }
	if currency != "COP" {
		add(ReasonInvalidCurrency, "smartfastpay pays COP only")
	}
	if amountInCents < MinAmountInCents || amountInCents > MaxAmountInCents {
		add(ReasonInvalidAmount, "amount must be at least 2.00 COP and fit decimal(10,2) on smartfastpay")
	}
	if len(p.LegalID) != documentLen || !digitsOnly(p.LegalID) {
		add(ReasonInvalidDocument, "legalId must be 11 digits on smartfastpay (its document field)")
	}
	if len(p.Phone) != phoneLen || !digitsOnly(p.Phone) || !strings.HasPrefix(p.Phone, phonePrefix) {
		add(ReasonInvalidPhone, "phone must be 57 and 10 digits on smartfastpay")
	}
	// The name is sent as given, spaces around it included, and the rail
	// counts what it receives: at most 150 characters of it, 3 without
	// the spaces.
	if n := utf8.RuneCountInString(strings.TrimSpace(p.Name)); n < minName || utf8.RuneCountInString(p.Name) > maxName || !utf8.ValidString(p.Name) {
		add(ReasonInvalidName, "name must be 3-150 characters on smartfastpay")
	}
	if !payout.ValidEmail(p.Email) {
		add(ReasonInvalidEmail, "email is not a valid address")
	}
	return vs
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
