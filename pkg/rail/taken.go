package rail

import (
	"regexp"
	"strings"
	"unicode"
)

// takenWords are the stems a validation message uses to refuse a value as
// already used: "has already been taken", "already exists", "duplicate",
// "must be unique", "in use".
var takenWords = []string{"taken", "already", "exist", "duplicat", "unique", "in use"}

// notExist matches a negated "exist" ("does not exist", "doesn't exist",
// "non-existent", "inexistent"): a refusal of something we referred to,
// never of our id as already used.
var notExist = regexp.MustCompile(`(not|n't|non)[\s-]*exist|inexist`)

// RefusedAsTaken reports whether a provider's validation message (a 400 or
// 422 answered to a create) refuses one of subjects, whole words such as
// "invoice" or "transaction", as already used [ours]. Neither single-payout
// rail publishes its answer to a create repeating our id, and this is how
// one reads ("The invoice has already been taken."). Our id is always a
// well-formed requestId, so such a refusal means the provider holds a
// payout under it, one of our earlier POSTs whose answer was lost and
// which the lookup before this POST did not show yet: it is
// AlreadyExists, never a refusal of the payee. Read wrongly the other way,
// a payee ends REJECTED while the provider pays it; read wrongly this way,
// a payee waits, deferred and alerted, instead of being REJECTED.
func RefusedAsTaken(msg string, subjects ...string) bool {
	m := strings.ToLower(msg)
	words := strings.FieldsFunc(m, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	named := false
	for _, w := range words {
		for _, s := range subjects {
			named = named || w == s
		}
	}
	if !named {
		return false
	}
	m = notExist.ReplaceAllString(m, " ")
	for _, w := range takenWords {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}
