package wepayout

import (
	"bytes"

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
		case bytes.EqualFold(key, []byte("data")), bytes.EqualFold(key, []byte("meta")):
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
			for _, name := range []string{"current_page", "last_page", "per_page", "total"} {
				if bytes.EqualFold(key, []byte(name)) {
					return false
				}
			}
			return p.Skip()
		}
		n, ok := p.Int()
		if !ok || seen[k] {
			return false
		}
		seen[k], *dst = true, n
		return true
	})
}
