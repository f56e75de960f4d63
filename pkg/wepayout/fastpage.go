package wepayout

import (
	"encoding/json"
	"slices"

	"github.com/wompi-payouts/pipeline/pkg/plainjson"
)

// readEmptyPage is listPage's fast path for the answer a lookup of a
// payee not yet paid gets, the dispatcher's most frequent read: a page
// whose data is an empty array. encoding/json took 13% of the workers' CPU
// in a WEpayout load run, most of it on these pages. It accepts an object
// whose "data" is [] and whose "meta", when there, is null or an object of
// plain integers, other members skipped (syntax checked); anything else
// (a key that differs from data or meta only in case, a repeated one, a
// payment in data) is declined, and encoding/json reads the page as
// before. FuzzEmptyPageMatchesEncodingJSON holds it to encoding/json: when
// it accepts, json.Unmarshal reads the same page without an error.
func readEmptyPage(raw []byte) (pg PaymentPage, ok bool) {
	p := plainjson.Scanner{B: raw}
	p.Space()
	if !p.Byte('{') {
		return pg, false
	}
	var data, meta bool
	ok = p.Object(func(key []byte) bool {
		switch {
		case string(key) == "data" && !data:
			data = true
			p.Space()
			if !p.Byte('[') {
				return false
			}
			p.Space()
			pg.Data = []Payment{}
			return p.Byte(']')
		case string(key) == "meta" && !meta:
			meta = true
			if p.Null() {
				pg.Meta = nil
				return true
			}
			pg.Meta = &PageMeta{}
			return p.Byte('{') && readMeta(&p, pg.Meta)
		case plainjson.Folds(key, "data", "meta"):
			return false
		}
		return p.Skip()
	})
	return pg, ok && data && p.End()
}

// readMeta reads a page's meta object, its '{' already read.
func readMeta(p *plainjson.Scanner, m *PageMeta) bool {
	var seen [4]bool
	return p.Object(func(key []byte) bool {
		var dst *int
		var k int
		switch string(key) {
		case "current_page":
			k, dst = 0, &m.CurrentPage
		case "last_page":
			k, dst = 1, &m.LastPage
		case "per_page":
			k, dst = 2, &m.PerPage
		case "total":
			k, dst = 3, &m.Total
		default:
			return !plainjson.Folds(key, "current_page", "last_page", "per_page", "total") && p.Skip()
		}
		n, ok := p.Int()
		if !ok || seen[k] {
			return false
		}
		seen[k], *dst = true, n
		return true
	})
}

// readPaymentAnswer is the fast path of decodePayment for a payment
// written plainly: the answer's object, bare or wrapped in {"data": {...}}
// as payload takes it, each of Payment's keys at most once and spelled
// exactly, strings without escapes. The typed fields go through their own
// UnmarshalJSON with the value's bytes, as encoding/json calls it; other
// keys are skipped with their syntax checked. It declines anything else,
// and decodePayment reads the answer with encoding/json.
// FuzzPaymentMatchesEncodingJSON holds it to encoding/json.
func readPaymentAnswer(raw []byte) (p Payment, ok bool) {
	s := plainjson.Scanner{B: raw}
	s.Space()
	start := s.I
	if !s.Byte('{') {
		return p, false
	}
	var id, data bool
	var dataAt, dataEnd int
	ok = s.Object(func(key []byte) bool {
		switch {
		case string(key) == "id" && !id:
			id = true
		case string(key) == "data" && !data:
			data, dataAt = true, s.I
			ok := s.Skip()
			dataEnd = s.I
			return ok
		case plainjson.Folds(key, "id", "data"):
			return false
		}
		return s.Skip()
	})
	if !ok || !s.End() {
		return p, false
	}
	obj := raw[start:s.I]
	if !id && data && raw[dataAt] == '{' {
		obj = raw[dataAt:dataEnd] // payload's wrapped answer
	}
	return p, readPayment(obj, &p)
}

// paymentKeys are Payment's keys.
var paymentKeys = []string{"id", "merchant_id", "invoice", "external_id", "amount", "currency", "country",
	"description", "status", "status_detail", "notification_url", "created_at", "updated_at"}

// readPayment reads the payment object obj into p.
func readPayment(obj []byte, p *Payment) bool {
	s := plainjson.Scanner{B: obj}
	if !s.Byte('{') {
		return false
	}
	var seen uint16
	return s.Object(func(key []byte) bool {
		k := slices.Index(paymentKeys, string(key))
		if k < 0 {
			return !plainjson.Folds(key, paymentKeys...) && s.Skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		var dst *string
		switch k {
		case 2:
			dst = &p.Invoice
		case 3:
			dst = &p.ExternalID
		case 5:
			dst = &p.Currency
		case 6:
			dst = &p.Country
		case 7:
			dst = &p.Description
		case 10:
			dst = &p.NotificationURL
		}
		if dst != nil {
			v, ok := s.Str()
			*dst = v
			return ok
		}
		at := s.I
		if !s.Skip() {
			return false
		}
		v := obj[at:s.I]
		switch k {
		case 0:
			return p.ID.UnmarshalJSON(v) == nil
		case 1:
			return p.MerchantID.UnmarshalJSON(v) == nil
		case 4:
			return p.Amount.UnmarshalJSON(v) == nil
		case 8:
			return p.Status.UnmarshalJSON(v) == nil
		case 9:
			if string(v) == "null" {
				p.StatusDetail = nil
				return true
			}
			return v[0] == '{' && json.Unmarshal(v, &p.StatusDetail) == nil
		case 11:
			return p.CreatedAt.UnmarshalJSON(v) == nil
		case 12:
			return p.UpdatedAt.UnmarshalJSON(v) == nil
		}
		return false
	})
}

// decodePayment reads a payment answer: readPaymentAnswer, else
// encoding/json as before.
func decodePayment(raw []byte) (Payment, error) {
	if p, ok := readPaymentAnswer(raw); ok {
		return p, nil
	}
	var p Payment
	err := json.Unmarshal(payload(raw), &p)
	return p, err
}
