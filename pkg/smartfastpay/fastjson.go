package smartfastpay

import (
	"encoding/json"

	"github.com/wompi-payouts/pipeline/pkg/plainjson"
)

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
	dst = plainjson.AppendString(dst, r.CustomerID)
	if r.Branch != "" {
		dst = append(dst, `,"branch":`...)
		dst = plainjson.AppendString(dst, r.Branch)
	}
	dst = append(dst, `,"name":`...)
	dst = plainjson.AppendString(dst, r.Name)
	dst = append(dst, `,"email":`...)
	dst = plainjson.AppendString(dst, r.Email)
	dst = append(dst, `,"document":`...)
	dst = plainjson.AppendString(dst, r.Document)
	dst = append(dst, `,"phone":`...)
	dst = plainjson.AppendString(dst, r.Phone)
	amount, err := FormatAmount(int64(r.Amount))
	if err != nil {
		return dst, err
	}
	dst = append(dst, `,"amount":`...)
	dst = append(dst, amount...)
	dst = append(dst, `,"currency":`...)
	dst = plainjson.AppendString(dst, r.Currency)
	dst = append(dst, `,"country":`...)
	dst = plainjson.AppendString(dst, r.Country)
	dst = append(dst, `,"callback":`...)
	dst = plainjson.AppendString(dst, r.Callback)
	dst = append(dst, `,"transaction":{"id":`...)
	dst = plainjson.AppendString(dst, r.Transaction.ID)
	return append(dst, "}}"...), nil
}

// createAnswer is what Create reads from its answer.
type createAnswer struct {
	id, status string
}

// readCreateAnswer reads the two shapes SmartFastPay answers a create with,
// bare {"id", "status", "total", "subtotal", "exchange", "fee"} [seed] or
// wrapped {"requestId", "data": {...}} [doc], when they are written
// plainly (plainjson): each key at most once and spelled exactly, amounts
// that ParseAmount takes, no nulls. It declines (ok false) anything else,
// and decodeCreateAnswer, the encoding/json path, reads it. When it
// accepts, encoding/json reads the same id and status and no error.
func readCreateAnswer(raw []byte) (a createAnswer, ok bool) {
	p := plainjson.Scanner{B: raw}
	p.Space()
	if !p.Byte('{') {
		return a, false
	}
	top := p.I
	if key, _ := p.Key(); string(key) != "data" && string(key) != "requestId" {
		p.I = top // a bare answer: the payout's members from the top
		ok = readPayout(&p, &a)
	} else {
		p.I = top
		ok = readEnvelope(&p, &a)
	}
	return a, ok && p.End() && a.id != ""
}

// readEnvelope reads the members of {"requestId", "data"}, its '{' already
// read. data must be there.
func readEnvelope(p *plainjson.Scanner, a *createAnswer) bool {
	var data, requestID bool
	return p.Object(func(key []byte) bool {
		switch {
		case string(key) == "data" && !data:
			data = true
			return p.Byte('{') && readPayout(p, a)
		case string(key) == "requestId" && !requestID:
			requestID = true
			_, ok := p.Raw()
			return ok
		}
		return false
	}) && data
}

// readPayout reads the members of a create's payout object, its '{'
// already read.
func readPayout(p *plainjson.Scanner, a *createAnswer) bool {
	var seen [6]bool
	return p.Object(func(key []byte) bool {
		var k int
		var ok bool
		switch string(key) {
		case "id":
			var b []byte
			b, ok = p.Text()
			a.id = string(b)
		case "status":
			k = 1
			a.status, ok = p.Str()
		case "exchange":
			k = 2
			_, ok = p.Text()
		case "total":
			k, ok = 3, amount(p)
		case "subtotal":
			k, ok = 4, amount(p)
		case "fee":
			k, ok = 5, amount(p)
		default:
			return false
		}
		if !ok || seen[k] {
			return false
		}
		seen[k] = true
		return true
	})
}

// amount reads what Amount reads without an error.
func amount(p *plainjson.Scanner) bool {
	b, ok := p.Text()
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
