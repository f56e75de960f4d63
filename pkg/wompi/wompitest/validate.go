package wompitest

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The field rules of one transaction of POST /payouts, as the simulator
// enforces them with a 400. Each rule says where it comes from: [doc]
// Wompi's documentation, [sdk] the third-party SDK, [ours] our model of a
// rule Wompi does not publish. Where the rule is [ours] it is the stricter
// of the simulator's and the pipeline's (pkg/wompi.Validate), so that a
// payee our ingest accepts is never refused here (and a payee refused here
// was refused at ingest, per payee, instead of failing a whole batch).
const (
	// MaxNameBytes bounds the beneficiary name [ours]: 100 bytes of UTF-8,
	// so a name of accented letters holds fewer than 100 characters.
	MaxNameBytes = 100
	// MaxLegalIDLen bounds legalId [ours].
	MaxLegalIDLen = 20
	// MaxTxReferenceLen bounds a transaction reference [ours].
	MaxTxReferenceLen = 64
)

var personTypes = set("NATURAL", "JURIDICA") // [sdk]

// ValidateTransaction returns the reasons the simulator refuses one
// transaction of a batch with 400 (nil: accepted). It checks every field
// but bankId, which the server checks against its /banks list. The
// messages name fields, never their values (no personal data).
func ValidateTransaction(t wompi.TransactionRequest) []string {
	var msgs []string
	// [doc] CC, NIT, CE; [sdk] PP, TI, DNI.
	if !legalIDTypes[t.LegalIDType] {
		msgs = append(msgs, "legalIdType must be one of CC, NIT, CE, PP, TI, DNI")
	}
	// [ours] 1-20 ASCII letters or digits: no '-', so a NIT is sent without
	// its check digit. Whether it is numeric for its type is the bank's
	// check at settlement (D18, D25), not a 400.
	if !validLegalID(t.LegalID) {
		msgs = append(msgs, "legalId must be 1-20 letters or digits")
	}
	// [doc] AHORROS, CORRIENTE; [sdk] DEPOSITO_ELECTRONICO.
	if !accountTypes[t.AccountType] {
		msgs = append(msgs, "accountType must be AHORROS, CORRIENTE or DEPOSITO_ELECTRONICO")
	}
	// [doc] numeric, 6-20 digits, not all zeros.
	if !validAccountNumber(t.AccountNumber) {
		msgs = append(msgs, "accountNumber must be 6-20 digits and not all zeros")
	}
	if !ValidName(t.Name) {
		msgs = append(msgs, "name is required: at most 100 bytes of letters, digits, spaces and . , ' - & ( ) /")
	}
	// [doc] required (the [sdk] says optional; we always send it); the
	// format is [ours].
	if !validEmail(t.Email) {
		msgs = append(msgs, "email is not a valid email address")
	}
	// [doc] an integer of cents; [doc] D24 "value 0" says 0 is refused.
	if t.Amount <= 0 {
		msgs = append(msgs, "amount must be a positive integer of cents")
	}
	// [doc] required, unique per transaction; the length is [ours].
	if strings.TrimSpace(t.Reference) == "" || len(t.Reference) > MaxTxReferenceLen {
		msgs = append(msgs, "reference is required (at most 64 characters)")
	}
	if t.PersonType != "" && !personTypes[t.PersonType] {
		msgs = append(msgs, "personType must be NATURAL or JURIDICA")
	}
	return msgs
}

// ValidName is the simulator's beneficiary name rule [ours]: valid UTF-8,
// at most MaxNameBytes bytes, at least one letter, no leading or trailing
// space, and only letters (accents and ñ included), combining marks,
// digits, spaces and . , ' - & ( ) /.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameBytes || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	letter := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			letter = true
		case unicode.IsMark(r), unicode.IsDigit(r), strings.ContainsRune(" .,'-&()/", r):
		default:
			return false
		}
	}
	return letter
}
