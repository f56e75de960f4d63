package wepayout

import (
	"strings"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Reason codes of this rail's validation, stable: ingest publishes them as
// REJECTED reasonCode. The generic ones are payout's.
const (
	ReasonInvalidCurrency      = payout.ReasonInvalidCurrency    // not BRL
	ReasonInvalidAmount        = payout.ReasonInvalidAmount      // not positive, or above MaxAmountInCents
	ReasonInvalidLegalIDType   = payout.ReasonInvalidLegalIDType // not CPF or CNPJ
	ReasonInvalidName          = payout.ReasonInvalidName        // empty, or over 100 characters
	ReasonInvalidAccountNumber = payout.ReasonInvalidAccountNumber
	ReasonInvalidAccountType   = payout.ReasonInvalidAccountType // not CORRIENTE or AHORROS

	ReasonInvalidCPF          payout.Reason = "INVALID_CPF"           // not 11 digits with valid check digits
	ReasonInvalidCNPJ         payout.Reason = "INVALID_CNPJ"          // not 14 digits with valid check digits
	ReasonMissingPixOrBank    payout.Reason = "MISSING_PIX_OR_BANK"   // neither a pixKey nor bank fields
	ReasonPixAndBank          payout.Reason = "PIX_AND_BANK"          // both a pixKey and bank fields [ours]
	ReasonInvalidPixKey       payout.Reason = "INVALID_PIX_KEY"       // not a CPF, CNPJ, +55 phone, email or random (UUID) key
	ReasonInvalidBankCode     payout.Reason = "INVALID_BANK_CODE"     // not 3 digits
	ReasonInvalidBranch       payout.Reason = "INVALID_BRANCH"        // not 1-5 digits
	ReasonInvalidBranchDigit  payout.Reason = "INVALID_BRANCH_DIGIT"  // given, and not one digit or X
	ReasonInvalidAccountDigit payout.Reason = "INVALID_ACCOUNT_DIGIT" // not one or two digits, or X
)

// Limits of the fields where WEpayout publishes none [ours].
const (
	maxBranchLen  = 5
	maxAccountLen = 20
	maxPixKeyLen  = 77 // the longest PIX key (an email) the central bank allows
)

// ValidCPF reports whether s is 11 digits with valid check digits. A CPF of
// eleven equal digits passes the arithmetic but is refused, as the Receita
// Federal does.
func ValidCPF(s string) bool {
	if len(s) != 11 || !allDigits(s) || allSame(s) {
		return false
	}
	for n := 9; n <= 10; n++ {
		sum := 0
		for i := 0; i < n; i++ {
			sum += int(s[i]-'0') * (n + 1 - i)
		}
		d := sum * 10 % 11
		if d == 10 {
			d = 0
		}
		if d != int(s[n]-'0') {
			return false
		}
	}
	return true
}

// ValidCNPJ reports whether s is 14 digits with valid check digits (the
// numeric CNPJ; equal digits refused).
func ValidCNPJ(s string) bool {
	if len(s) != 14 || !allDigits(s) || allSame(s) {
		return false
	}
	w1 := []int{5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}
	w2 := []int{6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}
	for _, w := range [][]int{w1, w2} {
		sum := 0
		for i, m := range w {
			sum += int(s[i]-'0') * m
		}
		d := sum % 11
		if d < 2 {
			d = 0
		} else {
			d = 11 - d
		}
		if d != int(s[len(w)]-'0') {
			return false
		}
	}
	return true
}

func allSame(s string) bool { return strings.Count(s, s[:1]) == len(s) }

// ValidPixKey reports whether s is one of the PIX key forms: a CPF or CNPJ
// (digits, valid), a phone "+55" followed by 10 or 11 digits, an email, or a
// random key (a UUID, 8-4-4-4-12 hex).
func ValidPixKey(s string) bool {
	switch {
	case s == "" || len(s) > maxPixKeyLen || strings.ContainsAny(s, " \t\r\n"):
		return false
	case allDigits(s):
		return ValidCPF(s) || ValidCNPJ(s)
	case strings.HasPrefix(s, "+"):
		return strings.HasPrefix(s, "+55") && allDigits(s[1:]) && (len(s) == 13 || len(s) == 14)
	case strings.Contains(s, "@"):
		at := strings.LastIndexByte(s, '@')
		dom := s[at+1:]
		return at > 0 && strings.Count(s, "@") == 1 && strings.Contains(dom, ".") && !strings.HasPrefix(dom, ".") && !strings.HasSuffix(dom, ".")
	}
	return isUUID(s)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isDigitOrX(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	if s == "X" || s == "x" {
		return true
	}
	return allDigits(s)
}

// HasBankFields reports whether the payee carries any bank field (bankCode,
// branch, branchDigit, accountNumber, accountDigit). accountType alone does
// not count: PayoutRequested always carries one.
func HasBankFields(p rail.Payee) bool {
	return p.BankCode != "" || p.Branch != "" || p.BranchDigit != "" || p.AccountNumber != "" || p.AccountDigit != ""
}

// MaxAmountInCents is the largest amount sent to WEpayout [ours: WEpayout
// publishes no maximum; twelve digits of reais, as our simulator takes].
// It also keeps any batch's sum of amounts far from int64's limit.
const MaxAmountInCents = 999_999_999_999_99

// Validate checks an amount, a payee and a currency against this rail's
// rules and returns every violation in a stable order; nil means payable
// here. Messages never contain the personal data they are about.
func Validate(currency string, amountInCents int64, p rail.Payee) payout.Violations {
	var vs payout.Violations
	add := func(r payout.Reason, msg string) { vs = append(vs, payout.Violation{Reason: r, Message: msg}) }
	if currency != CurrencyBRL {
		add(ReasonInvalidCurrency, "wepayout pays BRL only")
	}
	if amountInCents > MaxAmountInCents {
		add(ReasonInvalidAmount, "amount must be at most 999,999,999,999.99 BRL on wepayout")
	}
	switch p.LegalIDType {
	case DocumentCPF:
		if !ValidCPF(p.LegalID) {
			add(ReasonInvalidCPF, "legalId is not 11 digits with valid CPF check digits")
		}
	case DocumentCNPJ:
		if !ValidCNPJ(p.LegalID) {
			add(ReasonInvalidCNPJ, "legalId is not 14 digits with valid CNPJ check digits")
		}
	default:
		add(ReasonInvalidLegalIDType, "legalIdType must be CPF or CNPJ on wepayout")
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(p.Name)); n == 0 || n > MaxNameLength || !utf8.ValidString(p.Name) {
		add(ReasonInvalidName, "name must be 1-100 characters")
	}
	bank := HasBankFields(p)
	switch {
	case p.PixKey != "" && bank:
		add(ReasonPixAndBank, "give either pixKey or the bank fields, not both")
	case p.PixKey != "":
		if !ValidPixKey(p.PixKey) {
			add(ReasonInvalidPixKey, "pixKey is not a CPF, CNPJ, +55 phone, email or random key")
		}
	case !bank:
		add(ReasonMissingPixOrBank, "give a pixKey or the bank fields (bankCode, branch, accountNumber, accountDigit, accountType)")
	default:
		if len(p.BankCode) != 3 || !allDigits(p.BankCode) {
			add(ReasonInvalidBankCode, "bankCode must be 3 digits")
		}
		if p.Branch == "" || len(p.Branch) > maxBranchLen || !allDigits(p.Branch) {
			add(ReasonInvalidBranch, "branch must be 1-5 digits")
		}
		if p.BranchDigit != "" && !isDigitOrX(p.BranchDigit, 1) {
			add(ReasonInvalidBranchDigit, "branchDigit must be one digit or X")
		}
		if p.AccountNumber == "" || len(p.AccountNumber) > maxAccountLen || !allDigits(p.AccountNumber) {
			add(ReasonInvalidAccountNumber, "accountNumber must be 1-20 digits")
		}
		if !isDigitOrX(p.AccountDigit, 2) {
			add(ReasonInvalidAccountDigit, "accountDigit must be one or two digits, or X")
		}
		if _, ok := AccountTypes[p.AccountType]; !ok {
			add(ReasonInvalidAccountType, "accountType must be CORRIENTE or AHORROS on wepayout")
		}
	}
	return vs
}

// ValidateRequest is Validate plus the request's own fields: a positive
// amount and a non-empty id.
func ValidateRequest(r rail.PayoutRequest) payout.Violations {
	var vs payout.Violations
	if strings.TrimSpace(r.ID) == "" {
		vs = append(vs, payout.Violation{Reason: payout.ReasonInvalidRequestID, Message: "empty id"})
	}
	if r.AmountInCents <= 0 {
		vs = append(vs, payout.Violation{Reason: ReasonInvalidAmount, Message: "amount must be positive"})
	}
	return append(vs, Validate(r.Currency, r.AmountInCents, r.Payee)...)
}
