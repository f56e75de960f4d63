package wompi

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
)

// sentValues is the personal data a call sent Wompi (its payees' legal
// ids, account numbers, names, emails and phones), indexed to be masked
// wherever Wompi's error answer quotes it back: a validation 400 may quote
// a CE or a passport ("AB12345", "X1234"), a short account number, a name
// or an email with characters the heuristics of maskText stop at, none of
// which maskText alone would hide. httpError masks them in every text of
// the *Error (Code and Messages, and so Error() and maskedMessage) before
// maskText's digit-run and email masking.
//
// It is built only for an error answer (call.sent is a function), so an
// accepted batch of 10,000 transactions pays nothing for it. Built, it is
// a set of the values and, by first word, the lengths of the values that
// start with it: masking a text costs one look-up per word of the text,
// and a few more where a word starts a value (one per length of the values
// it starts, not one per value: a common first name starts thousands of a
// batch's names).
//
// Matching is by whole token, ignoring case: a value is masked where it
// stands between two bytes that are not word bytes (a word byte is an
// ASCII letter or digit, or a byte of a non-ASCII character: '_', '.',
// '-' and the like separate words), never inside a longer token, so that a PP "X1234" does not cut into "AX12345" nor a
// name "Ana" into "Anabel". A value's leading and trailing punctuation
// (the '+' of a phone) is not part of it. A value shorter than
// minSentValue bytes is not masked: a one or two letter value is an
// ordinary word of a message ("de", "CC") more often than a payee's data,
// and Validate accepts no legal id, account number or email that short.
// An array index (digits in brackets after a word: the 12 of
// "transactions[12]") is never masked, even when a value reads the same:
// rejectedItems maps a refusal back to our items by it.
type sentValues struct {
	values map[string]struct{} // lower-cased
	lens   map[string][]int    // lower-cased first word -> lengths of the values that start with it, longest first
	maxLen int                 // of the longest value
}

// minSentValue is the length, in bytes, below which a sent value is not
// masked (see sentValues).
const minSentValue = 3

// newSentValues indexes vals; empty and too short values are skipped,
// duplicates kept once. nil when none is left.
func newSentValues(vals []string) *sentValues {
	s := &sentValues{values: make(map[string]struct{}, len(vals)), lens: make(map[string][]int)}
	for _, v := range vals {
		v = trimToWords(v)
		if len(v) < minSentValue {
			continue
		}
		lv := strings.ToLower(v)
		if _, ok := s.values[lv]; ok {
			continue
		}
		s.values[lv] = struct{}{}
		w := strings.ToLower(v[:wordEnd(v, 0)])
		if !slices.Contains(s.lens[w], len(v)) {
			s.lens[w] = append(s.lens[w], len(v))
		}
		s.maxLen = max(s.maxLen, len(v))
	}
	if len(s.values) == 0 {
		return nil
	}
	for _, ls := range s.lens {
		slices.SortFunc(ls, func(a, b int) int { return b - a })
	}
	return s
}

// mask returns text with every value of s masked (maskSent). It reads
// text only until its result holds limit bytes, and then ends it at a word
// boundary: a value is either masked whole or not reached, never cut. A
// nil s returns text as it is.
func (s *sentValues) mask(text string, limit int) string {
	if s == nil {
		return text
	}
	var b strings.Builder
	last := 0 // text[last:i] is not written yet
	i := 0
	for i < len(text) && b.Len()+i-last < limit {
		if !isWordByte(text[i]) {
			i++
			continue
		}
		j := wordEnd(text, i)
		if v := s.at(text, i, j); v != "" {
			b.WriteString(text[last:i])
			b.WriteString(maskSent(v))
			i += len(v)
			last = i
			continue
		}
		i = j
	}
	if last == 0 && i == len(text) {
		return text
	}
	b.WriteString(text[last:i])
	return b.String()
}

// at returns the longest value of s that text holds as a whole token from
// i (as text spells it), whose first word is text[i:j]; "" for none or for
// an array index. Case is ignored where it does not change a value's
// length in bytes.
func (s *sentValues) at(text string, i, j int) string {
	if j-i > s.maxLen || arrayIndex(text, i, j) {
		return ""
	}
	for _, n := range s.lens[strings.ToLower(text[i:j])] {
		e := i + n
		if e > len(text) || e < len(text) && isWordByte(text[e]) {
			continue
		}
		if _, ok := s.values[strings.ToLower(text[i:e])]; ok {
			return text[i:e]
		}
	}
	return ""
}

// arrayIndex reports whether text[i:j] is digits in brackets after a word
// byte: the index of "transactions[12]".
func arrayIndex(text string, i, j int) bool {
	if i < 2 || text[i-1] != '[' || !isWordByte(text[i-2]) || j >= len(text) || text[j] != ']' {
		return false
	}
	for k := i; k < j; k++ {
		if text[k] < '0' || text[k] > '9' {
			return false
		}
	}
	return true
}

// maskSent is the mask of a sent value: "***@***" for an email, for digits
// what maskText makes of them (so that either pass gives the same text:
// "****" up to eight digits, "****" and the last four beyond), "****" for
// anything else.
func maskSent(v string) string {
	if strings.IndexByte(v, '@') >= 0 {
		return "***@***"
	}
	for k := 0; k < len(v); k++ {
		if v[k] < '0' || v[k] > '9' {
			return "****"
		}
	}
	if len(v) <= 8 {
		return "****"
	}
	return "****" + v[len(v)-4:]
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// wordEnd returns the end of the word that starts at i.
func wordEnd(s string, i int) int {
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	return i
}

// trimToWords cuts what precedes the first word byte of v and follows its
// last.
func trimToWords(v string) string {
	i, j := 0, len(v)
	for i < j && !isWordByte(v[i]) {
		i++
	}
	for j > i && !isWordByte(v[j-1]) {
		j--
	}
	return v[i:j]
}

// payeeValues lists the personal values r's transactions carry: each
// payee's legal id, account number, name, email and phone.
func (r *CreatePayoutRequest) payeeValues() []string {
	out := make([]string, 0, 5*len(r.Transactions))
	for i := range r.Transactions {
		t := &r.Transactions[i]
		out = append(out, t.LegalID, t.AccountNumber, t.Name, t.Email, t.Phone)
	}
	return out
}

// payeeValues lists the personal values of r's file when it is in our
// WOMPI CSV layout (each row's legal id, account number, name and email).
// The banks' layouts are not read: only maskText's masking applies to an
// error answer to them.
func (r *CreatePayoutFileRequest) payeeValues() []string {
	if r.FileType != FileTypeWompi {
		return nil
	}
	rows, err := ParseWompiCSV(bytes.NewReader(r.Content))
	if err != nil {
		return nil
	}
	out := make([]string, 0, 4*len(rows))
	for _, row := range rows {
		out = append(out, row.LegalID, row.AccountNumber, row.Name, row.Email)
	}
	return out
}

// sentInQuery returns call.sent for a listing's query: the payee's
// account number and name a transactions filter sends. nil when q carries
// neither.
func sentInQuery(q url.Values) func() []string {
	acct, name := q.Get("accountNumber"), q.Get("payeeName")
	if acct == "" && name == "" {
		return nil
	}
	return func() []string { return []string{acct, name} }
}
