package smartfastpay

import "encoding/json"

// The create's body and answer are the rail's per-payee JSON: encoding/json
// took 14% of the workers' CPU in the SmartFastPay load run (reflection,
// and each answer read twice, once for the envelope and once for the
// payout). This file writes the body and reads the usual answer by hand.
// Both are held to encoding/json by differential fuzzing
// (FuzzCreateBodyMatchesEncodingJSON, FuzzCreateAnswerMatchesEncodingJSON):
// the body is byte-identical to json.Marshal's, and the answer reader
// either gives what json.Unmarshal gives or declines, and the slow path
// reads the answer.

// appendCreateBody appends json.Marshal(r)'s bytes to dst.
func appendCreateBody(dst []byte, r *CreateRequest) ([]byte, error) {
	dst = append(dst, `{"customer_id":`...)
	dst = appendJSONString(dst, r.CustomerID)
	if r.Branch != "" {
		dst = append(dst, `,"branch":`...)
		dst = appendJSONString(dst, r.Branch)
	}
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, r.Name)
	dst = append(dst, `,"email":`...)
	dst = appendJSONString(dst, r.Email)
	dst = append(dst, `,"document":`...)
	dst = appendJSONString(dst, r.Document)
	dst = append(dst, `,"phone":`...)
	dst = appendJSONString(dst, r.Phone)
	amount, err := FormatAmount(int64(r.Amount))
	if err != nil {
		return dst, err
	}
	dst = append(dst, `,"amount":`...)
	dst = append(dst, amount...)
	dst = append(dst, `,"currency":`...)
	dst = appendJSONString(dst, r.Currency)
	dst = append(dst, `,"country":`...)
	dst = appendJSONString(dst, r.Country)
	dst = append(dst, `,"callback":`...)
	dst = appendJSONString(dst, r.Callback)
	dst = append(dst, `,"transaction":{"id":`...)
	dst = appendJSONString(dst, r.Transaction.ID)
	return append(dst, "}}"...), nil
}

// appendJSONString appends s quoted as encoding/json quotes it. Plain
// printable ASCII is copied; anything else (escapes, HTML characters,
// control bytes, non-ASCII, invalid UTF-8) goes through json.Marshal, so
// the bytes are its own.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// plainByte reports whether encoding/json writes c as itself inside a
// string, and decodes it as itself: printable ASCII except the quote, the
// backslash and the HTML characters it escapes.
func plainByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// createAnswer is what Create reads from its answer.
type createAnswer struct {
	id, status string
}

// readCreateAnswer reads the two shapes SmartFastPay answers a create with,
// bare {"id", "status", "total", "subtotal", "exchange", "fee"} [seed] or
// wrapped {"requestId", "data": {...}} [doc], when they are written
// plainly: each key at most once and spelled exactly, strings of printable
// ASCII without escapes, amounts that ParseAmount takes, no nulls. It
// declines (ok false) anything else, and decodeCreateAnswer, the
// encoding/json path, reads it. When it accepts, encoding/json reads the
// same id and status and no error.
func readCreateAnswer(raw []byte) (a createAnswer, ok bool) {
	p := scanner{b: raw}
	p.space()
	if !p.byte('{') {
		return a, false
	}
	top := p.i
	p.space()
	if key, _ := p.raw(); string(key) != "data" && string(key) != "requestId" {
		// A bare answer: the payout's members from the top.
		p.i = top
		if a, ok = p.payout(); !ok {
			return a, false
		}
	} else if a, ok = p.envelope(top); !ok {
		return a, false
	}
	p.space()
	return a, ok && p.i == len(p.b) && a.id != ""
}

// envelope reads the members of {"requestId", "data"} from top, just after
// its '{', up to and including its '}'. data must be there.
func (p *scanner) envelope(top int) (a createAnswer, ok bool) {
	p.i = top
	var data, requestID bool
	for {
		p.space()
		key, ok := p.raw()
		if !ok {
			return a, false
		}
		p.space()
		if !p.byte(':') {
			return a, false
		}
		p.space()
		switch {
		case string(key) == "data" && !data:
			data = true
			if !p.byte('{') {
				return a, false
			}
			if a, ok = p.payout(); !ok {
				return a, false
			}
		case string(key) == "requestId" && !requestID:
			requestID = true
			if _, ok := p.raw(); !ok {
				return a, false
			}
		default:
			return a, false
		}
		p.space()
		if p.byte('}') {
			return a, data
		}
		if !p.byte(',') {
			return a, false
		}
	}
}

// payout reads the members of a create's payout object, its '{' already
// read, up to and including its '}'.
func (p *scanner) payout() (a createAnswer, ok bool) {
	var seen [6]bool
	p.space()
	if p.byte('}') {
		return a, true
	}
	for {
		p.space()
		key, ok := p.raw()
		if !ok {
			return a, false
		}
		p.space()
		if !p.byte(':') {
			return a, false
		}
		p.space()
		k := -1
		switch string(key) {
		case "id":
			k = 0
			a.id, ok = p.text()
		case "status":
			k = 1
			a.status, ok = p.str()
		case "exchange":
			k = 2
			_, ok = p.textBytes()
		case "total":
			k = 3
			ok = p.amount()
		case "subtotal":
			k = 4
			ok = p.amount()
		case "fee":
			k = 5
			ok = p.amount()
		}
		if k < 0 || !ok || seen[k] {
			return a, false
		}
		seen[k] = true
		p.space()
		if p.byte('}') {
			return a, true
		}
		if !p.byte(',') {
			return a, false
		}
	}
}

// scanner reads JSON tokens from b at i.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of plain bytes (see plainByte).
func (p *scanner) str() (string, bool) {
	b, ok := p.raw()
	return string(b), ok
}

// raw reads a string of plain bytes and returns its bytes, unquoted.
func (p *scanner) raw() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			return p.b[start : p.i-1], true
		}
		if !plainByte(c) {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// number reads a JSON number literal and returns its text.
func (p *scanner) number() ([]byte, bool) {
	start := p.i
	p.byte('-')
	switch {
	case p.byte('0'):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.byte('.') && !p.digits() {
		return nil, false
	}
	if p.byte('e') || p.byte('E') {
		if !p.byte('+') {
			p.byte('-')
		}
		if !p.digits() {
			return nil, false
		}
	}
	return p.b[start:p.i], true
}

func (p *scanner) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// text reads what Text reads: a string's content or a number's literal.
func (p *scanner) text() (string, bool) {
	b, ok := p.textBytes()
	return string(b), ok
}

func (p *scanner) textBytes() ([]byte, bool) {
	if p.i < len(p.b) && p.b[p.i] == '"' {
		return p.raw()
	}
	return p.number()
}

// amount reads what Amount reads without an error.
func (p *scanner) amount() bool {
	b, ok := p.textBytes()
	if !ok {
		return false
	}
	_, err := ParseAmount(string(b))
	return err == nil
}

// decodeCreateAnswer reads a create's answer with encoding/json, as
// Create did before readCreateAnswer: every shape it declines.
func decodeCreateAnswer(raw []byte) (createAnswer, error) {
	var res CreateResult
	err := json.Unmarshal(unwrap(raw), &res)
	return createAnswer{id: string(res.ID), status: res.Status}, err
}
