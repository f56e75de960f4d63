package payout

import "strings"

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

// ValidateEnvelope checks what every rail needs of a request, whatever it
// pays through: the requestId, the origin account, the payment type and a
// positive amount. A rail's own rules come on top: wompi.Validate,
// smartfastpay.Validate, wepayout.Validate.
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
