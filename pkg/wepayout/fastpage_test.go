package wepayout

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzEmptyPageMatchesEncodingJSON: whenever readEmptyPage accepts an
// answer, json.Unmarshal reads the same page from it without an error. A
// page the fast path took as empty while it lists a payment would let the
// dispatcher post a payee already paid.
func FuzzEmptyPageMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"data":[],"links":{"first":"http://127.0.0.1:1/v2/payout/payments?external_id=x\u0026page=1\u0026per_page=100","last":"http://h/?page=1","next":null,"prev":null},"meta":{"current_page":1,"last_page":1,"per_page":100,"total":0}}`,
		`{"data":[],"meta":null}`,
		`{"data":[]}`,
		` { "data" : [ ] , "meta" : { "total" : 0 , "extra" : [1,{"a":"\n"}] } } `,
		`{"data":[{"id":1,"invoice":"x"}],"meta":{"total":1}}`,
		`{"data":[],"Data":[{"id":1}]}`,
		`{"data":[],"data":[{"id":1}]}`,
		`{"Meta":{"total":1},"data":[]}`,
		`{"data":[],"meta":{"laſt_page":2}}`,
		`{"data":[],"meta":{"last_page":2,"last_page":3}}`,
		`{"data":[],"meta":{"total":1.0}}`,
		`{"data":[],"meta":{"total":"1"}}`,
		`{"data":[],"meta":{"total":99999999999999999999}}`,
		`{"data":[],"meta":[]}`,
		`{"data":null}`,
		`{"data":[]} x`,
		`{"data":[],"links":{"a":tru}}`,
		`[]`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := readEmptyPage(raw)
		if !ok {
			return
		}
		var want PaymentPage
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("ours read %q as an empty page; encoding/json: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("from %q\n ours %+v %+v\n json %+v %+v", raw, got, got.Meta, want, want.Meta)
		}
	})
}

// TestReadEmptyPage: which of the seeds take the fast path.
func TestReadEmptyPage(t *testing.T) {
	for raw, want := range map[string]bool{
		`{"data":[],"links":{"first":"http://h/?a=1\u0026page=1","next":null},"meta":{"current_page":1,"last_page":1,"per_page":100,"total":0}}`: true,
		`{"data":[],"meta":null}`:                         true,
		`{"data":[{"id":1,"invoice":"x"}]}`:               false,
		`{"data":[],"Data":[{"id":1}]}`:                   false,
		`{"data":[],"data":[{"id":1}]}`:                   false,
		`{"data":[],"meta":{"laſt_page":2}}`:              false,
		`{"data":[],"meta":{"total":1.0}}`:                false,
		`{"links":{},"meta":{"total":0}}`:                 false,
		`{"data":[],"meta":{"total":0,"from":null}} `:     true,
		"{\"data\":[],\"links\":{\"x\":\"\\ud800\"}}\n\t": true,
	} {
		pg, ok := readEmptyPage([]byte(raw))
		if ok != want || ok && (pg.Data == nil || len(pg.Data) != 0) {
			t.Errorf("%s: read %+v, %v; want accepted %v", raw, pg, ok, want)
		}
	}
}
