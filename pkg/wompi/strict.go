package wompi

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeStrict parses one JSON value (numbers as json.Number), refusing a
// repeated or case-variant key in any object (ErrAmbiguousEvent), nesting
// deeper than maxEventDepth, more than maxEventValues values, a body that
// is not UTF-8, and trailing data.
//
// Every webhook goes through it, so it reads the body in one pass instead
// of through encoding/json's Decoder.Token, which cost about a third of the
// tracker's webhook handling: the same values (map[string]any, []any,
// string, json.Number, bool, nil), the same refusals, found in the same
// left-to-right order, but for a body that is not UTF-8, refused whole.
// A string with an escape is unquoted as encoding/json unquotes it.
// FuzzDecodeStrict holds it to the Decoder.Token parser it replaced.
func decodeStrict(body []byte) (any, error) {
	if !utf8.Valid(body) {
		return nil, errNotUTF8
	}
	p := strictParser{b: body}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if p.space(); p.pos != len(p.b) {
		return nil, fmt.Errorf("%w: data after the event object", ErrMalformedEvent)
	}
	return v, nil
}

type strictParser struct {
	b      []byte
	pos    int
	values int // read so far, against maxEventValues
}

var (
	errTooManyValues = fmt.Errorf("%w: more than %d JSON values", ErrMalformedEvent, maxEventValues)
	// JSON between systems is UTF-8 (RFC 8259 §8.1). Refused whole, a
	// body's invalid bytes are not each turned into a three-byte U+FFFD
	// (encoding/json's way), which made an unsigned MiB of them tens of MB.
	errNotUTF8 = fmt.Errorf("%w: the body is not UTF-8", ErrMalformedEvent)
)

// syntax is the error of a byte where JSON allows none of what it is.
func (p *strictParser) syntax(what string) error {
	if p.pos >= len(p.b) {
		return fmt.Errorf("%w: body ends inside %s", ErrMalformedEvent, what)
	}
	return fmt.Errorf("%w: invalid character %q in %s", ErrMalformedEvent, p.b[p.pos], what)
}

func (p *strictParser) space() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *strictParser) value(depth int) (any, error) {
	if p.pos >= len(p.b) {
		return nil, p.syntax("a value")
	}
	if p.values++; p.values > maxEventValues {
		return nil, errTooManyValues
	}
	switch c := p.b[p.pos]; {
	case c == '{' || c == '[':
		if depth >= maxEventDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d", ErrMalformedEvent, maxEventDepth)
		}
		p.pos++
		if c == '{' {
			return p.object(depth)
		}
		return p.array(depth)
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.syntax("a value")
}

func (p *strictParser) literal(lit string) error {
	if len(p.b)-p.pos < len(lit) || string(p.b[p.pos:p.pos+len(lit)]) != lit {
		return p.syntax("a literal")
	}
	p.pos += len(lit)
	return nil
}

// smallObject is how many keys an object's folded keys are compared
// linearly before they go into a map.
const smallObject = 16

func (p *strictParser) object(depth int) (any, error) {
	m := map[string]any{}
	var folded []string
	var seen map[string]struct{}
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		if p.pos >= len(p.b) || p.b[p.pos] != '"' {
			return nil, p.syntax("an object key")
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		fk := foldKeyFast(k)
		dup := false
		if seen != nil {
			_, dup = seen[fk]
			seen[fk] = struct{}{}
		} else {
			for _, f := range folded {
				if f == fk {
					dup = true
					break
				}
			}
			if folded = append(folded, fk); len(folded) > smallObject {
				seen = make(map[string]struct{}, 2*len(folded))
				for _, f := range folded {
					seen[f] = struct{}{}
				}
			}
		}
		if dup {
			return nil, fmt.Errorf("%w: key %q", ErrAmbiguousEvent, truncateKey(k))
		}
		p.space()
		if p.pos >= len(p.b) || p.b[p.pos] != ':' {
			return nil, p.syntax("an object, after a key")
		}
		p.pos++
		p.space()
		if m[k], err = p.value(depth + 1); err != nil {
			return nil, err
		}
		p.space()
		if p.pos < len(p.b) && p.b[p.pos] == ',' {
			p.pos++
			p.space()
			continue
		}
		if p.pos < len(p.b) && p.b[p.pos] == '}' {
			p.pos++
			return m, nil
		}
		return nil, p.syntax("an object, after a value")
	}
}

func (p *strictParser) array(depth int) (any, error) {
	a := []any{}
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.pos < len(p.b) && p.b[p.pos] == ',' {
			p.pos++
			p.space()
			continue
		}
		if p.pos < len(p.b) && p.b[p.pos] == ']' {
			p.pos++
			return a, nil
		}
		return nil, p.syntax("an array, after a value")
	}
}

// string reads the string at p.pos (its opening quote). A plain one (no
// escape, no control byte) is copied as is; any other is unquoted as
// encoding/json unquotes it (the body is valid UTF-8: decodeStrict).
func (p *strictParser) string() (string, error) {
	start := p.pos
	i := start + 1
	plain := true
	for ; i < len(p.b); i++ {
		c := p.b[i]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			plain = false
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			plain = false
		}
	}
	if i >= len(p.b) {
		p.pos = len(p.b)
		return "", p.syntax("a string")
	}
	p.pos = i + 1
	raw := p.b[start+1 : i]
	if plain {
		return string(raw), nil
	}
	return unquote(raw)
}

// unquote decodes the inside of a JSON string of valid UTF-8, as
// encoding/json does: the escapes \" \\ \/ \b \f \n \r \t and \uXXXX (a
// surrogate pair as one rune, a lone surrogate as U+FFFD); a control byte
// or any other escape is an error. No escape decodes to more bytes than it
// is written in, so the result takes one allocation of at most len(raw).
func unquote(raw []byte) (string, error) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < 0x20 {
			return "", fmt.Errorf("%w: control byte %#x in a string", ErrMalformedEvent, c)
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return "", fmt.Errorf("%w: a string ends in a backslash", ErrMalformedEvent)
		}
		switch e := raw[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := hex4(raw[i:])
			if r < 0 {
				return "", fmt.Errorf("%w: a \\u escape without four hex digits", ErrMalformedEvent)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if pair := utf16.DecodeRune(r, hex4(raw[i:])); pair != unicode.ReplacementChar {
					r = pair
					i += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			b.WriteRune(r)
			continue
		default:
			return "", fmt.Errorf("%w: invalid escape %q in a string", ErrMalformedEvent, "\\"+string(rune(e)))
		}
		i += 2
	}
	return b.String(), nil
}

// hex4 is the rune of a \uXXXX escape at the start of s, -1 if s does not
// start with one.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *strictParser) number() (any, error) {
	start := p.pos
	if p.b[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.b) && p.b[p.pos] == '0':
		p.pos++
	case p.pos < len(p.b) && p.b[p.pos] >= '1' && p.b[p.pos] <= '9':
		p.digits()
	default:
		return nil, p.syntax("a number")
	}
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		if !p.digits() {
			return nil, p.syntax("a number's fraction")
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if !p.digits() {
			return nil, p.syntax("a number's exponent")
		}
	}
	return json.Number(p.b[start:p.pos]), nil
}

// digits reads a run of digits; false when there is none.
func (p *strictParser) digits() bool {
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
		p.pos++
	}
	return p.pos > start
}

// foldKeyFast is foldKey without its allocation for an ASCII key, whose
// letters fold to upper case (the smallest rune of each ASCII letter's
// orbit: K for k and the Kelvin sign, S for s and the long s).
func foldKeyFast(k string) string {
	lower := false
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= utf8.RuneSelf {
			return foldKey(k)
		}
		if c >= 'a' && c <= 'z' {
			lower = true
		}
	}
	if !lower {
		return k
	}
	var b strings.Builder // one allocation, where []byte then string made two
	b.Grow(len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
