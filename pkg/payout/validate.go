package payout

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reason is a stable, machine-readable reason code. It goes into
// PayoutStatusChanged.reasonCode; consumers may switch on it, so a code is
// never renamed.
type Reason string

// Validation reasons: ingest rejects a request with these.
const (
	ReasonInvalidRequestID     Reason = "INVALID_REQUEST_ID"
	ReasonInvalidOriginAccount Reason = "INVALID_ORIGIN_ACCOUNT"
	ReasonInvalidPaymentType   Reason = "INVALID_PAYMENT_TYPE"
	ReasonInvalidAmount        Reason = "INVALID_AMOUNT"
	ReasonAmountOverLimit      Reason = "AMOUNT_OVER_LIMIT"
	ReasonInvalidCurrency      Reason = "INVALID_CURRENCY"
	ReasonInvalidLegalIDType   Reason = "INVALID_LEGAL_ID_TYPE"
	ReasonInvalidLegalID       Reason = "INVALID_LEGAL_ID"
	ReasonInvalidAccountType   Reason = "INVALID_ACCOUNT_TYPE"
	ReasonInvalidAccountNumber Reason = "INVALID_ACCOUNT_NUMBER"
	ReasonUnknownBankCode      Reason = "UNKNOWN_BANK_CODE"
	ReasonInvalidBankID        Reason = "INVALID_BANK_ID"
	ReasonInvalidEmail         Reason = "INVALID_EMAIL"
	ReasonInvalidName          Reason = "INVALID_NAME"
	ReasonInvalidDispersion    Reason = "INVALID_DISPERSION_DATETIME"
	ReasonInvalidRecurring     Reason = "INVALID_RECURRING"
)

// Reasons the dispatcher and tracker attach to status changes.
const (
	ReasonDuplicateRequest    Reason = "DUPLICATE_REQUEST"    // the requestId was already batched or paid: this copy is dropped
	ReasonDailyLimit          Reason = "DAILY_LIMIT"          // the account's daily amount is used up (ours or Wompi's EXC_017)
	ReasonBatchBudget         Reason = "DAILY_BATCH_BUDGET"   // the client's 3,800 batches of the day are used up
	ReasonInsufficientBalance Reason = "INSUFFICIENT_BALANCE" // Wompi's EXC_008
	ReasonUnknownBankID       Reason = "UNKNOWN_BANK_ID"      // GET /banks has no bankId for the bank code
	ReasonWompiRejected       Reason = "WOMPI_REJECTED"       // Wompi refused the batch with a 4xx that has no code
)

// Violation is one broken rule of a request. Message never contains the
// personal data it is about (no account numbers, legal ids or emails).
type Violation struct {
	Reason  Reason
	Message string
}

// Violations are all the broken rules of one request, in a stable order.
type Violations []Violation

// Reason returns the reason code to publish: the first violation's.
func (vs Violations) Reason() Reason {
	if len(vs) == 0 {
		return ""
	}
	return vs[0].Reason
}

// Message joins every violation as "CODE: message; CODE: message".
func (vs Violations) Message() string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(string(v.Reason))
		b.WriteString(": ")
		b.WriteString(v.Message)
	}
	return b.String()
}

// Validate checks a request against every documented rule and returns all
// the violations, not just the first; nil means valid. now is the instant
// the check is made (the clock is injected so day boundaries are testable).
// A valid request costs no allocation.
func Validate(r *Request, now time.Time) Violations {
	vs := ValidateEnvelope(r)
	add := func(reason Reason, msg string) { vs = append(vs, Violation{reason, msg}) }
	if r.AmountInCents > DefaultDailyLimitCents {
		add(ReasonAmountOverLimit, "amountInCents is above Wompi's daily transactional limit of $1,500,000,000.00")
	}
	if r.Currency != Currency {
		add(ReasonInvalidCurrency, "currency must be COP")
	}

	b := &r.Beneficiary
	if !validLegalIDType(b.LegalIDType) {
		add(ReasonInvalidLegalIDType, "beneficiary.legalIdType must be one of CC, NIT, CE, PP, TI, DNI")
	} else if !ValidLegalID(b.LegalIDType, b.LegalID) {
		add(ReasonInvalidLegalID, "beneficiary.legalId is malformed for its legalIdType (CC 5-10 digits, TI 6-11, NIT 6-15 digits without the check digit, CE/PP/DNI 3-20 letters or digits)")
	}
	switch b.AccountType {
	case AccountAhorros, AccountCorriente, AccountDepositoElectronico:
	default:
		add(ReasonInvalidAccountType, "beneficiary.accountType must be AHORROS, CORRIENTE or DEPOSITO_ELECTRONICO")
	}
	if !ValidAccountNumber(b.AccountNumber) {
		add(ReasonInvalidAccountNumber, "beneficiary.accountNumber must be 6-20 digits and not all zeros")
	}
	if b.BankID != nil {
		if !ValidUUID(*b.BankID) {
			add(ReasonInvalidBankID, "beneficiary.bankId must be a UUID")
		}
	} else if _, ok := bankByCode[b.BankCode]; !ok {
		add(ReasonUnknownBankCode, "beneficiary.bankCode is not a known Colombian bank code and no bankId is given")
	}
	if !ValidEmail(b.Email) {
		add(ReasonInvalidEmail, "beneficiary.email is not a valid address")
	}
	if !validName(b.Name) {
		add(ReasonInvalidName, "beneficiary.name must be at most 100 bytes of UTF-8 (fewer characters when accented), with a letter, no leading or trailing space, and only letters, digits, spaces and . , ' - & ( ) /")
	}

	if r.DispersionDatetime != nil && DayOf(*r.DispersionDatetime) <= DayOf(now) {
		add(ReasonInvalidDispersion, "dispersionDatetime must be on a later Bogota day than the request")
	}
	if rc := r.Recurring; rc != nil {
		switch {
		case rc.Interval != IntervalBiweek && rc.Interval != IntervalMonth:
			add(ReasonInvalidRecurring, "recurring.interval must be BIWEEK or MONTH")
		case rc.Months != 3 && rc.Months != 6 && rc.Months != 12:
			add(ReasonInvalidRecurring, "recurring.months must be 3, 6 or 12")
		case r.DispersionDatetime == nil:
			add(ReasonInvalidRecurring, "recurring requires dispersionDatetime")
		}
	}
	return vs
}

// ValidateEnvelope checks what every rail needs of a request, whatever it
// pays through: the requestId, the origin account, the payment type and a
// positive amount. A rail's own rules come on top (Validate is Wompi's).
func ValidateEnvelope(r *Request) Violations {
	var vs Violations
	add := func(reason Reason, msg string) { vs = append(vs, Violation{reason, msg}) }
	if !ValidReference(r.RequestID) {
		add(ReasonInvalidRequestID, "requestId must be 1-64 characters of letters, digits and '-'")
	}
	if !validOpaqueID(r.OriginAccountID) {
		add(ReasonInvalidOriginAccount, "originAccountId must be 1-64 printable characters without spaces")
	}
	switch r.PaymentType {
	case PaymentPayroll, PaymentProviders, PaymentOther:
	default:
		add(ReasonInvalidPaymentType, "paymentType must be PAYROLL, PROVIDERS or OTHER")
	}
	if r.AmountInCents <= 0 {
		add(ReasonInvalidAmount, "amountInCents must be greater than zero")
	}
	return vs
}

// ValidReference reports whether s is 1-64 characters of letters, digits
// and '-': the rule for Wompi references and idempotency keys, and so for
// our requestId and batchId.
func ValidReference(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validOpaqueID accepts an id we pass through to Wompi without
// interpreting it [ours]: 1-64 printable ASCII characters, no spaces.
func validOpaqueID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func validLegalIDType(t LegalIDType) bool {
	switch t {
	case LegalCC, LegalNIT, LegalCE, LegalPP, LegalTI, LegalDNI:
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
func ValidLegalID(t LegalIDType, id string) bool {
	switch t {
	case LegalCC:
		return digitsNotZero(id, 5, 10)
	case LegalTI:
		return digitsNotZero(id, 6, 11)
	case LegalNIT:
		return digitsNotZero(id, 6, 15)
	case LegalCE, LegalPP, LegalDNI:
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

// ValidEmail is a pragmatic check [ours]: at most 254 bytes, one '@', a
// local part of 1-64 characters without spaces or control characters, and a
// domain of dot-separated labels of letters, digits and '-' with at least one
// dot and a final label of two or more letters.
func ValidEmail(s string) bool {
	if len(s) < 6 || len(s) > 254 {
		return false
	}
	at := strings.IndexByte(s, '@')
	if at < 1 || at > 64 || strings.IndexByte(s[at+1:], '@') >= 0 {
		return false
	}
	for i := 0; i < at; i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '<' || c == '>' || c == '(' || c == ')' || c == '[' || c == ']' || c == '\\' {
			return false
		}
	}
	if s[0] == '.' || s[at-1] == '.' {
		return false
	}
	domain := s[at+1:]
	dots, labelLen, lastLabelAlpha := 0, 0, true
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		switch {
		case c == '.':
			if labelLen == 0 || domain[i-1] == '-' {
				return false
			}
			dots++
			labelLen, lastLabelAlpha = 0, true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			if labelLen++; labelLen > 63 {
				return false
			}
		case c >= '0' && c <= '9' || c == '-':
			if labelLen == 0 && c == '-' {
				return false
			}
			if labelLen++; labelLen > 63 {
				return false
			}
			lastLabelAlpha = false
		default:
			return false
		}
	}
	return dots > 0 && labelLen >= 2 && lastLabelAlpha
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
