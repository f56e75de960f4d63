package wepayout

import (
	"bytes"
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
// exactly, strings without escapes. The typed fields are read by the plain
// readers below (setField), else by their own UnmarshalJSON with the
// value's bytes, as encoding/json calls it; other keys are skipped with
// their syntax checked. It declines anything else,
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
			return setField(&p.ID, v, plainID)
		case 1:
			return setField(&p.MerchantID, v, plainID)
		case 4:
			return setField(&p.Amount, v, plainCents)
		case 8:
			return setField(&p.Status, v, plainStatus)
		case 9:
			if string(v) == "null" {
				p.StatusDetail = nil
				return true
			}
			return v[0] == '{' && json.Unmarshal(v, &p.StatusDetail) == nil
		case 11:
			return setField(&p.CreatedAt, v, plainTime)
		case 12:
			return setField(&p.UpdatedAt, v, plainTime)
		}
		return false
	})
}

// The typed fields of a payment (ID, Cents, StatusRef, Time) cost
// readPayment most of its time through their UnmarshalJSON methods, each
// a json.Unmarshal. plainID, plainCents, plainStatus and plainTime read
// the shapes WEpayout writes plainly, and give what the method gives; they
// decline (ok false) anything else, and setField calls the method as
// before, so a value they decline and every error are the method's.
// FuzzPaymentFieldMatchesUnmarshalJSON holds each to json.Unmarshal into
// its type; TestPlainPaymentFields pins which shapes they take.

// setField sets *dst from the value v: plain's reading when it takes v,
// else dst's UnmarshalJSON, as encoding/json calls it. It reports whether
// v was read without an error.
func setField[T any, PT interface {
	*T
	UnmarshalJSON([]byte) error
}](dst PT, v []byte, plain func([]byte) (T, bool)) bool {
	if x, ok := plain(v); ok {
		*dst = x
		return true
	}
	return dst.UnmarshalJSON(v) == nil
}

// plainID reads an id written as a number literal (kept as written, as
// json.Number keeps it) or a string without escapes.
func plainID(v []byte) (ID, bool) {
	s := plainjson.Scanner{B: v}
	s.Space()
	t, ok := s.Text()
	if !ok || !s.End() {
		return "", false
	}
	return ID(t), true
}

// plainCents reads the amounts WEpayout writes: GET's integer cents
// (5034), the create answer's reais string ("R$50.34", "50.34", "50") and
// a reais number with one or two decimals (50.34), at most 15 digits
// before the point. It declines a sign, a separator other than the one
// decimal point, a space, an exponent, null and a leading zero in a number
// (not JSON), which Cents.UnmarshalJSON reads or refuses.
func plainCents(v []byte) (Cents, bool) {
	quoted := len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
	if quoted {
		v = v[1 : len(v)-1]
		if len(v) >= 2 && v[0] == 'R' && v[1] == '$' {
			v = v[2:]
		}
	}
	whole, frac, dot := v, v[:0], false
	if i := bytes.IndexByte(v, '.'); i >= 0 {
		whole, frac, dot = v[:i], v[i+1:], true
	}
	n, ok := plainDigits(whole, 15)
	if !ok || !quoted && len(whole) > 1 && whole[0] == '0' {
		return 0, false
	}
	if !dot {
		if !quoted {
			return Cents(n), numberAmountIsCents
		}
		return Cents(n * 100), true
	}
	f, ok := plainDigits(frac, 2)
	if !ok {
		return 0, false
	}
	if len(frac) == 1 {
		f *= 10
	}
	return Cents(n*100 + f), true
}

// plainDigits reads b, one to max ASCII digits, as a number.
func plainDigits(b []byte, max int) (int64, bool) {
	if len(b) < 1 || len(b) > max {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// plainStatus reads a status object whose members are only "id", an
// integer of at most 15 digits or a string of such digits, and "name", a
// string without escapes. A repeated member is read again: the last one
// counts, as for encoding/json. Any other member (a key in another case
// among them), a null, a fraction, a sign in a string are declined.
func plainStatus(v []byte) (StatusRef, bool) {
	var st StatusRef
	s := plainjson.Scanner{B: v}
	s.Space()
	if !s.Byte('{') {
		return st, false
	}
	ok := s.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "id":
			st.ID, ok = plainStatusID(&s)
		case "name":
			st.Name, ok = s.Str()
		}
		return ok
	})
	return st, ok && s.End()
}

// plainStatusID reads a status id: an integer literal, or a string of
// digits.
func plainStatusID(s *plainjson.Scanner) (int, bool) {
	if !s.Next('"') {
		return s.Int()
	}
	b, ok := s.Raw()
	if !ok {
		return 0, false
	}
	n, ok := plainDigits(b, 15)
	return int(n), ok
}

// plainTime reads a time string without escapes that ParseTime takes.
func plainTime(v []byte) (Time, bool) {
	s := plainjson.Scanner{B: v}
	s.Space()
	str, ok := s.Str()
	if !ok || !s.End() {
		return Time{}, false
	}
	t, err := ParseTime(str)
	if err != nil {
		return Time{}, false
	}
	return Time{t}, true
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
