package sfptest

import (
	"encoding/json"

	"github.com/wompi-payouts/pipeline/pkg/plainjson"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// The simulator's create is the load run's busiest call: encoding/json took
// a quarter of the simulator's CPU there (reading the body, writing the
// answer from a map). This file reads a plainly written body and writes
// the answer by hand; FuzzCreateBodyMatchesEncodingJSON and
// TestCreateAnswerBytes hold both to encoding/json.

// readCreateBody reads a create's body written plainly (plainjson): the
// documented keys only, each at most once and spelled exactly, no nulls,
// nothing after the object. It declines (ok false) anything else, which
// encoding/json then reads as before. When it accepts, json.Unmarshal
// gives the same createWire.
func readCreateBody(b []byte) (cw createWire, ok bool) {
	p := plainjson.Scanner{B: b}
	p.Space()
	if !p.Byte('{') {
		return cw, false
	}
	var seen uint16
	str := func(dst **string) bool {
		s, ok := p.Str()
		*dst = &s
		return ok
	}
	ok = p.Object(func(key []byte) bool {
		var k uint
		var ok bool
		switch string(key) {
		case "customer_id":
			k, ok = 0, str(&cw.CustomerID)
		case "branch":
			k, ok = 1, str(&cw.Branch)
		case "name":
			k, ok = 2, str(&cw.Name)
		case "email":
			k, ok = 3, str(&cw.Email)
		case "document":
			k, ok = 4, str(&cw.Document)
		case "phone":
			k, ok = 5, str(&cw.Phone)
		case "currency":
			k, ok = 6, str(&cw.Currency)
		case "country":
			k, ok = 7, str(&cw.Country)
		case "callback":
			k, ok = 8, str(&cw.Callback)
		case "amount":
			start := p.I
			k = 9
			if _, ok = p.Text(); ok {
				cw.Amount = json.RawMessage(b[start:p.I])
			}
		case "transaction":
			k = 10
			cw.Transaction = &struct {
				ID *string `json:"id"`
			}{}
			var id bool
			ok = p.Byte('{') && p.Object(func(key []byte) bool {
				if string(key) != "id" || id {
					return false
				}
				id = true
				return str(&cw.Transaction.ID)
			})
		default:
			return false
		}
		if !ok || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		return true
	})
	return cw, ok && p.End()
}

// appendCreateAnswer appends json.Marshal(s.createAnswer(p))'s bytes.
// s.mu held.
func (s *Server) appendCreateAnswer(dst []byte, p *payoutRec) []byte {
	amount := func(dst []byte, cents int64) []byte {
		a, _ := sfp.FormatAmount(cents)
		if s.cfg.NumericAmounts {
			return append(dst, a...)
		}
		return plainjson.AppendString(dst, a)
	}
	dst = append(dst, `{"exchange":`...)
	dst = amount(dst, 100)
	dst = append(dst, `,"fee":`...)
	dst = amount(dst, 0)
	dst = append(dst, `,"id":`...)
	dst = plainjson.AppendString(dst, p.id)
	dst = append(dst, `,"status":`...)
	dst = plainjson.AppendString(dst, p.status)
	dst = append(dst, `,"subtotal":`...)
	dst = amount(dst, p.amount)
	dst = append(dst, `,"total":`...)
	dst = amount(dst, p.amount)
	return append(dst, '}')
}
