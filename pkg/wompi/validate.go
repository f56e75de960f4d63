package wompi

import (
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Validate checks a request against every rule of the Wompi rail, on top of
// the envelope every rail needs (payout.ValidateEnvelope), and returns all
// the violations, not just the first; nil means valid. now is the instant
// the check is made (the clock is injected so day boundaries are testable).
// A valid request costs no allocation.
func Validate(r *payout.Request, now time.Time) payout.Violations {
	vs := payout.ValidateEnvelope(r)
	add := func(reason payout.Reason, msg string) {
		vs = append(vs, payout.Violation{Reason: reason, Message: msg})
	}
	if r.AmountInCents > DefaultDailyLimitCents {
		add(payout.ReasonAmountOverLimit, "amountInCents is above Wompi's daily transactional limit of $1,500,000,000.00")
	}
	if r.Currency != Currency {
		add(payout.ReasonInvalidCurrency, "currency must be COP")
	}

	b := &r.Beneficiary
	if !validLegalIDType(b.LegalIDType) {
		add(payout.ReasonInvalidLegalIDType, "beneficiary.legalIdType must be one of CC, NIT, CE, PP, TI, DNI")
	} else if !ValidLegalID(b.LegalIDType, b.LegalID) {
		add(payout.ReasonInvalidLegalID, "beneficiary.legalId is malformed for its legalIdType (CC 5-10 digits, TI 6-11, NIT 6-15 digits without the check digit, CE/PP/DNI 3-20 letters or digits)")
	}
	switch b.AccountType {
	case payout.AccountAhorros, payout.AccountCorriente, payout.AccountDepositoElectronico:
	default:
		add(payout.ReasonInvalidAccountType, "beneficiary.accountType must be AHORROS, CORRIENTE or DEPOSITO_ELECTRONICO")
	}
	if !ValidAccountNumber(b.AccountNumber) {
		add(payout.ReasonInvalidAccountNumber, "beneficiary.accountNumber must be 6-20 digits and not all zeros")
	}
	if b.BankID != nil {
		if !ValidUUID(*b.BankID) {
			add(payout.ReasonInvalidBankID, "beneficiary.bankId must be a UUID")
		}
	} else if _, ok := bankByCode[b.BankCode]; !ok {
		add(payout.ReasonUnknownBankCode, "beneficiary.bankCode is not a known Colombian bank code and no bankId is given")
	}
	if !payout.ValidEmail(b.Email) {
		add(payout.ReasonInvalidEmail, "beneficiary.email is not a valid address")
	}
	if !validName(b.Name) {
		add(payout.ReasonInvalidName, "beneficiary.name must be at most 100 bytes of UTF-8 (fewer characters when accented), with a letter, no leading or trailing space, and only letters, digits, spaces and . , ' - & ( ) /")
	}

	if r.DispersionDatetime != nil {
		bogota := rail.Location(rail.Wompi)
		if payout.DayIn(*r.DispersionDatetime, bogota) <= payout.DayIn(now, bogota) {
			add(payout.ReasonInvalidDispersion, "dispersionDatetime must be on a later Bogota day than the request")
		}
	}
	if rc := r.Recurring; rc != nil {
		switch {
		case rc.Interval != payout.IntervalBiweek && rc.Interval != payout.IntervalMonth:
			add(payout.ReasonInvalidRecurring, "recurring.interval must be BIWEEK or MONTH")
		case rc.Months != 3 && rc.Months != 6 && rc.Months != 12:
			add(payout.ReasonInvalidRecurring, "recurring.months must be 3, 6 or 12")
		case r.DispersionDatetime == nil:
			add(payout.ReasonInvalidRecurring, "recurring requires dispersionDatetime")
		}
	}
	return vs
}

func validLegalIDType(t payout.LegalIDType) bool {
	switch t {
	case payout.LegalCC, payout.LegalNIT, payout.LegalCE, payout.LegalPP, payout.LegalTI, payout.LegalDNI:
		return true
	}
	return false
}

// ValidLegalID reports whether id is well formed for its type. Wompi
// publishes no format, so these rules are [ours], from Colombian practice:
//   - CC (cédula): 5-10 digits;
//   - TI (tarjeta de identidad): 6-11 digits;
//   - NIT: 6-15 digits and nothing else: no check digit ("900123456-7" is
//     refused; send "900123456"). The simulator, standing in for Wompi,
//     refuses any '-' in legalId with a 400 that would reject the whole
//     batch, and the bank's D18 is "NIT not numeric" (issue 17);
//   - CE (cédula de extranjería), PP (passport), DNI: 3-20 letters and digits.
//
// All-zero numbers are refused (the bank's D25 "NIT in zeros"). Every rule
// is at least as strict as the simulator's (wompitest.ValidateTransaction:
// 1-20 letters or digits).
func ValidLegalID(t payout.LegalIDType, id string) bool {
	switch t {
	case payout.LegalCC:
		return digitsNotZero(id, 5, 10)
	case payout.LegalTI:
		return digitsNotZero(id, 6, 11)
	case payout.LegalNIT:
		return digitsNotZero(id, 6, 15)
	case payout.LegalCE, payout.LegalPP, payout.LegalDNI:
		if len(id) < 3 || len(id) > 20 {
			return false
		}
		zero := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				return false
			}
			zero = zero && c == '0'
		}
		return !zero
	}
	return false
}

// ValidAccountNumber reports whether s is numeric, 6-20 digits and not all
// zeros [doc].
func ValidAccountNumber(s string) bool { return digitsNotZero(s, 6, 20) }

func digitsNotZero(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	zero := true
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		zero = zero && s[i] == '0'
	}
	return !zero
}

// ValidUUID reports whether s is a canonical 8-4-4-4-12 hex UUID.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// MaxNameBytes bounds a beneficiary name: 100 bytes of UTF-8, not 100
// characters, so "á" counts twice. Wompi publishes no bound; this is the
// stricter of ours and the simulator's (wompitest.MaxNameBytes) [ours].
const MaxNameBytes = 100

// validName accepts a name of at most MaxNameBytes bytes of valid UTF-8
// with at least one letter, no leading or trailing space, and only letters
// (accents and ñ included), combining marks, decimal digits, spaces and
// . , ' - & ( ) / [ours]. The same rule as the simulator's, which stands in
// for Wompi's unpublished one: anything else would pass here and then
// reject a whole batch at the POST.
func validName(s string) bool {
	if s == "" || len(s) > MaxNameBytes || !utf8.ValidString(s) {
		return false
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	letter := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			letter = true
		case unicode.IsMark(r), unicode.IsDigit(r):
		case r == ' ' || r == '.' || r == ',' || r == '\'' || r == '-' || r == '&' || r == '(' || r == ')' || r == '/':
		default:
			return false
		}
	}
	return letter
}
