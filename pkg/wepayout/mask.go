package wepayout

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxMessage bounds a provider message kept in an error.
const maxMessage = 300

// Mask hides a personal value (a CPF or CNPJ, a PIX key, an account
// number): it keeps the last two characters of a value longer than six,
// nothing of a shorter one. "12345678909" -> "****09".
func Mask(s string) string {
	if len(s) <= 6 {
		return "****"
	}
	return "****" + s[len(s)-2:]
}

// maskText removes personal data from a provider message: first every
// known value (pii: what we sent), then any token that looks like one (four
// or more digits, an '@', a long hex run such as a random PIX key). The
// result is at most maxMessage bytes.
func maskText(msg string, pii []string) string {
	if msg == "" {
		return ""
	}
	// The message may become an event's reasonMessage, an Avro string:
	// UTF-8 only, whatever bytes the provider answered.
	msg = strings.ToValidUTF8(msg, "")
	for _, v := range pii {
		if len(v) >= 3 {
			// Any case: a provider may quote a name in capitals.
			msg = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(v)).ReplaceAllLiteralString(msg, Mask(v))
		}
	}
	fields := strings.FieldsFunc(msg, func(r rune) bool {
		return r == ' ' || r == '"' || r == '\'' || r == ':' || r == ',' || r == ';' || r == '(' || r == ')' || r == '[' || r == ']' || r == '{' || r == '}' || r == '='
	})
	for _, f := range fields {
		if strings.HasPrefix(f, "****") {
			continue
		}
		if looksPersonal(f) {
			msg = strings.ReplaceAll(msg, f, Mask(f))
		}
	}
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}

func looksPersonal(tok string) bool {
	if strings.Contains(tok, "@") {
		return true
	}
	digits, hex := 0, 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			hex++
		}
	}
	return digits >= 4 || hex >= 16
}

// maxCode bounds a provider code carried into an event's reasonCode.
const maxCode = 64

// maskCode renders a code of WEpayout's (an error's error.code, a
// cancellation's status_detail.code) for an event's reasonCode: kept as it
// is when it reads as a code (a letter, then letters, digits, '_', '-' or
// '.', at most maxCode bytes, no run of six digits or more, none of the
// values we sent: WE0001, invalid_pix_key), else masked as a message and
// cut to maxCode bytes. A code quoting a CPF or a PIX key, or one past
// the status topic's max.message.bytes, never reaches an event.
func maskCode(code string, pii []string) string {
	if codeLike(code) {
		for _, v := range pii {
			if len(v) >= 3 && strings.Contains(code, v) {
				return clip(maskText(code, pii), maxCode)
			}
		}
		return code
	}
	return clip(maskText(code, pii), maxCode)
}

func codeLike(s string) bool {
	if s == "" || len(s) > maxCode || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if run++; run >= 6 {
				return false
			}
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-', c == '.':
		default:
			return false
		}
		run = 0
	}
	return true
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
