// Package plainjson reads JSON written plainly, for the few hot paths
// where encoding/json's reflection costs more than the call around it (a
// single-payout rail's create, in the client and in its simulator).
//
// A Scanner reads tokens of the plain subset only: strings without escapes
// or control bytes (valid UTF-8), number literals, and the structural
// bytes. A caller that meets anything else declines the document and reads
// it with encoding/json instead; each caller holds its reader to
// encoding/json with a differential fuzz target.
package plainjson

import (
	"bytes"
	"unicode/utf8"
)

// Scanner reads JSON tokens from B, starting at I.
type Scanner struct {
	B []byte
	I int
}

// Space skips JSON whitespace.
func (p *Scanner) Space() {
	for p.I < len(p.B) && p.B[p.I] <= ' ' {
		switch p.B[p.I] {
		case ' ', '\t', '\n', '\r':
			p.I++
		default:
			return
		}
	}
}

// Byte reads c if it comes next.
func (p *Scanner) Byte(c byte) bool {
	if p.I < len(p.B) && p.B[p.I] == c {
		p.I++
		return true
	}
	return false
}

// Next reports whether c comes next, without reading it.
func (p *Scanner) Next(c byte) bool { return p.I < len(p.B) && p.B[p.I] == c }

// End skips whitespace and reports whether nothing follows.
func (p *Scanner) End() bool {
	p.Space()
	return p.I == len(p.B)
}

// Raw reads a string without escapes and returns its content, a slice of
// B: what encoding/json decodes it to. A backslash, a control byte or
// invalid UTF-8 (which encoding/json would replace) fails it.
func (p *Scanner) Raw() ([]byte, bool) {
	if !p.Byte('"') {
		return nil, false
	}
	var f byte
	for i := p.I; i < len(p.B); i++ {
		k := rawClass[p.B[i]]
		if k == 0 {
			continue
		}
		if k != rawQuote {
			f |= k
			continue
		}
		s := p.B[p.I:i]
		if f&rawRefused != 0 || f&rawHigh != 0 && !utf8.Valid(s) {
			return nil, false
		}
		p.I = i + 1
		return s, true
	}
	return nil, false
}

// rawClass classes a string's bytes for Raw: its closing quote, refused (a
// control byte, a backslash: an escape) or high (part of a multi-byte
// character, to be checked as UTF-8).
var rawClass = func() (t [256]byte) {
	for c := range 0x20 {
		t[c] = rawRefused
	}
	t['\\'] = rawRefused
	t['"'] = rawQuote
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = rawHigh
	}
	return t
}()

const (
	rawRefused = 1 << iota
	rawHigh
	rawQuote
)

// Str is Raw as a string.
func (p *Scanner) Str() (string, bool) {
	b, ok := p.Raw()
	return string(b), ok
}

// Number reads a JSON number literal and returns its text.
func (p *Scanner) Number() ([]byte, bool) {
	start := p.I
	p.Byte('-')
	switch {
	case p.Byte('0'):
	case p.I < len(p.B) && p.B[p.I] >= '1' && p.B[p.I] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.Byte('.') && !p.digits() {
		return nil, false
	}
	if p.Byte('e') || p.Byte('E') {
		if !p.Byte('+') {
			p.Byte('-')
		}
		if !p.digits() {
			return nil, false
		}
	}
	return p.B[start:p.I], true
}

func (p *Scanner) digits() bool {
	start := p.I
	for p.I < len(p.B) && p.B[p.I] >= '0' && p.B[p.I] <= '9' {
		p.I++
	}
	return p.I > start
}

// Text reads a string's content or a number's literal.
func (p *Scanner) Text() ([]byte, bool) {
	if p.Next('"') {
		return p.Raw()
	}
	return p.Number()
}

// Key reads a member's key and its colon, with the whitespace around.
func (p *Scanner) Key() ([]byte, bool) {
	p.Space()
	k, ok := p.Raw()
	if !ok {
		return nil, false
	}
	p.Space()
	if !p.Byte(':') {
		return nil, false
	}
	p.Space()
	return k, true
}

// Object reads an object's members, its '{' already read, up to and
// including its '}': member is called with each key, the scanner at the
// value, and must read the value. It fails when member does, or on a
// misplaced comma or brace.
func (p *Scanner) Object(member func(key []byte) bool) bool {
	p.Space()
	if p.Byte('}') {
		return true
	}
	for {
		k, ok := p.Key()
		if !ok || !member(k) {
			return false
		}
		p.Space()
		if p.Byte('}') {
			return true
		}
		if !p.Byte(',') {
			return false
		}
	}
}

// Array reads an array's elements, its '[' already read, up to and
// including its ']': elem is called at each element and must read it. It
// fails when elem does, or on a misplaced comma or bracket.
func (p *Scanner) Array(elem func() bool) bool { return p.members(']', 0, elem) }

// Int reads an integer literal without a fraction or an exponent, of at
// most 15 digits: what encoding/json decodes into an int unchanged.
func (p *Scanner) Int() (int, bool) {
	start := p.I
	neg := p.Byte('-')
	digits := p.I
	n := 0
	for p.I < len(p.B) && p.B[p.I] >= '0' && p.B[p.I] <= '9' {
		n = n*10 + int(p.B[p.I]-'0')
		p.I++
	}
	d := p.I - digits
	if d == 0 || d > 15 || d > 1 && p.B[digits] == '0' || p.Next('.') || p.Next('e') || p.Next('E') {
		p.I = start
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// Null reads the literal null.
func (p *Scanner) Null() bool {
	if len(p.B)-p.I >= 4 && string(p.B[p.I:p.I+4]) == "null" {
		p.I += 4
		return true
	}
	return false
}

// Skip reads any JSON value, escapes and all, checking its syntax as
// encoding/json does (objects and arrays nested at most 64 deep): what
// encoding/json does with the value of a key it has no field for.
func (p *Scanner) Skip() bool { return p.skip(0) }

func (p *Scanner) skip(depth int) bool {
	if depth > 64 || p.I >= len(p.B) {
		return false
	}
	switch c := p.B[p.I]; {
	case c == '{':
		p.I++
		return p.members('}', depth, func() bool {
			if !p.skipString() {
				return false
			}
			p.Space()
			if !p.Byte(':') {
				return false
			}
			p.Space()
			return p.skip(depth + 1)
		})
	case c == '[':
		p.I++
		return p.members(']', depth, func() bool { return p.skip(depth + 1) })
	case c == '"':
		return p.skipString()
	case c == 't':
		return p.word("true")
	case c == 'f':
		return p.word("false")
	case c == 'n':
		return p.Null()
	default:
		_, ok := p.Number()
		return ok
	}
}

// members reads comma-separated members up to the closing byte.
func (p *Scanner) members(closing byte, depth int, member func() bool) bool {
	p.Space()
	if p.Byte(closing) {
		return true
	}
	for {
		p.Space()
		if !member() {
			return false
		}
		p.Space()
		if p.Byte(closing) {
			return true
		}
		if !p.Byte(',') {
			return false
		}
	}
}

func (p *Scanner) word(w string) bool {
	if len(p.B)-p.I >= len(w) && string(p.B[p.I:p.I+len(w)]) == w {
		p.I += len(w)
		return true
	}
	return false
}

// skipString reads any JSON string: escapes, and any byte from 0x20 up.
func (p *Scanner) skipString() bool {
	if !p.Byte('"') {
		return false
	}
	// Plain bytes are passed over with a local index (p.I written back
	// through the pointer on every byte costs a third more).
	b, i := p.B, p.I
	for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
		i++
	}
	p.I = i
	for p.I < len(p.B) {
		c := p.B[p.I]
		p.I++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if p.I >= len(p.B) {
				return false
			}
			switch p.B[p.I] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.I++
			case 'u':
				if len(p.B)-p.I < 5 {
					return false
				}
				for _, h := range p.B[p.I+1 : p.I+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.I += 5
			default:
				return false
			}
		}
	}
	return false
}

// AppendString appends s quoted exactly as json.Marshal quotes it: plain
// printable ASCII and valid UTF-8 beyond it copied; '"' and '\\' escaped
// with a backslash, and the control bytes json.Marshal writes short (\b,
// \f, \n, \r, \t) so; other control bytes and the HTML characters <, >
// and & as \u00XX; invalid UTF-8 as \ufffd; U+2028 and U+2029 as \u2028
// and \u2029 (FuzzAppendStringMatchesMarshal).
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if asIs[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// asIs says which ASCII bytes json.Marshal writes in a string as they are:
// the printable ones but '"', '\\' and the HTML characters <, > and &.
var asIs = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Folds reports whether key matches one of names the way encoding/json
// matches a key to a field when no field is spelled exactly like it
// (Unicode simple case folding): a reader that meets such a key declines,
// since encoding/json would fill that field.
func Folds(key []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}
