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

import "unicode/utf8"

// Scanner reads JSON tokens from B, starting at I.
type Scanner struct {
	B []byte
	I int
}

// Space skips JSON whitespace.
func (p *Scanner) Space() {
	for p.I < len(p.B) {
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
	start, high := p.I, false
	for p.I < len(p.B) {
		c := p.B[p.I]
		switch {
		case c == '"':
			p.I++
			s := p.B[start : p.I-1]
			if high && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			high = true
		}
		p.I++
	}
	return nil, false
}

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
