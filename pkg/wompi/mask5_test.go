package wompi

import (
	"strings"
	"testing"
)

// TestErrorMasksFiveDigitLegalID: Validate lets a CC of 5-10 digits
// through, and a validation 400 of Wompi's may quote it back. The masking
// of httpError must hide the shortest legal id Validate accepts, not only
// runs of six digits or more; a transaction's index (at most 9,999:
// events.MaxTransactions) stays readable for rejectedItems.
func TestErrorMasksFiveDigitLegalID(t *testing.T) {
	const cc = "73512"
	if !ValidLegalID("CC", cc) {
		t.Fatalf("CC %s is not valid: the test needs the shortest valid CC", cc)
	}
	body := `{"code":"VALIDATION_ERROR","message":["transactions[9999].legalId ` + cc + ` no existe en el registro"]}`
	e := httpError(call{method: "POST", path: "/payouts"}, 400, []byte(body))
	if strings.Contains(e.Error(), cc) {
		t.Errorf("the error quotes the payee's CC: %v", e)
	}
	if got := maskedMessage(e); strings.Contains(got, cc) {
		t.Errorf("the event's message quotes the payee's CC: %s", got)
	}
	if !strings.HasPrefix(e.Messages[0], "transactions[9999]") {
		t.Errorf("the transaction's index was masked too: %q", e.Messages[0])
	}
}
