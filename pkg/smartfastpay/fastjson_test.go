package smartfastpay

import (
	"encoding/json"
	"testing"
)

// FuzzCreateBodyMatchesEncodingJSON holds the hand-written create body to
// json.Marshal's bytes, for any field values: HTML characters, control
// bytes, non-ASCII and invalid UTF-8 included, and the error for an amount
// FormatAmount refuses.
func FuzzCreateBodyMatchesEncodingJSON(f *testing.F) {
	f.Add("12345678909", "", "Ana Gómez", "ana@example.com", "12345678909", "573001234567", int64(12345), "https://example.com/cb?a=1&b=<2>", "req-1")
	f.Add("c\"\\\n\t\x00\x7f", "branch-1", "\xff\xfe", "a\u2028b\u2029", "<&>", "+57 300", int64(0), "", "")
	f.Add("", "", "", "", "", "", int64(-1), "", "x")
	f.Add("a<b", "a>b", "a&b", "\x1f", "\\", "\"", int64(1), "é", "\u2028")
	f.Add("x", "b", "José Ñandú", "e", "d", "p", int64(9_223_372_036_854_775_807), "c", "id")
	f.Fuzz(func(t *testing.T, customer, branch, name, email, document, phone string, cents int64, callback, id string) {
		r := CreateRequest{CustomerID: customer, Branch: branch, Name: name, Email: email, Document: document, Phone: phone,
			Amount: Amount(cents), Currency: "COP", Country: "COL", Callback: callback, Transaction: Transaction{ID: id}}
		want, werr := json.Marshal(r)
		got, gerr := appendCreateBody(nil, &r)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("errors differ: encoding/json %v, ours %v", werr, gerr)
		}
		if werr == nil && string(got) != string(want) {
			t.Fatalf("body differs\n ours %q\n json %q", got, want)
		}
	})
}

// createAnswers are answers a create may get: the simulator's four shapes
// first (bare or wrapped, amounts as strings or numbers), which must take
// the fast path, then shapes it must decline or read like encoding/json.
var createAnswers = []string{
	`{"exchange":"1.00","fee":"0.00","id":"1","status":"pending","subtotal":"980.00","total":"980.00"}`,
	`{"exchange":1.00,"fee":0.00,"id":"17","status":"pending","subtotal":980.00,"total":980.00}`,
	`{"data":{"exchange":"1.00","fee":"0.00","id":"2","status":"pending","subtotal":"2.50","total":"2.50"},"requestId":"r-1"}`,
	`{"data":{"exchange":1.00,"fee":0.00,"id":"3","status":"pending","subtotal":2.50,"total":2.50},"requestId":"r-2"}`,
}

var trickyAnswers = []string{
	` { "id" : 77 , "status" : "onhold" } `,
	`{"requestId":"r","data":{"id":"9","status":"success"}}`,
	`{"id":"1","status":"pending","ID":"2"}`,
	`{"id":"1","id":"2","status":"pending"}`,
	`{"data":{"id":"1"},"data":{"id":"2"}}`,
	`{"data":{"id":"1","status":"pending"},"data":{}}`,
	`{"Data":{"id":"1","status":"x"}}`,
	`{"data":null,"id":"4","status":"pending"}`,
	`{"id":"4","status":"pending","data":{"id":"5"}}`,
	`{"requestId":"r"}`,
	`{"id":"","status":"pending"}`,
	`{"id":null,"status":"pending"}`,
	`{"id":"1","status":"pend\u0069ng"}`,
	`{"id":"1","status":"pending"}x`,
	`{"id":"1","status":"pending",}`,
	`{"id":"1","status":"pending","total":"1.234"}`,
	`{"id":"1","status":"pending","total":-5}`,
	`{"id":"1","status":"pending","total":1e3}`,
	`{"id":1e3,"status":"pending"}`,
	`{"id":-0.5,"status":"pending"}`,
	`{"id":01,"status":"pending"}`,
	`{"id":"1","status":7}`,
	`{"id":"1","status":"pending","extra":true}`,
	`{"id":"é","status":"pending"}`,
	"{\"id\":\"1\",\"status\":\"pe\xffnding\"}",
	`{}`,
	`[]`,
	``,
	`{"data":{},"requestId":"r"}`,
	`{"requestId":1,"data":{"id":"1"}}`,
}

// FuzzCreateAnswerMatchesEncodingJSON: whenever the hand-written reader
// accepts an answer, encoding/json (the path Create used before) reads it
// without an error and with the same id and status.
func FuzzCreateAnswerMatchesEncodingJSON(f *testing.F) {
	for _, a := range append(append([]string{}, createAnswers...), trickyAnswers...) {
		f.Add([]byte(a))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := readCreateAnswer(raw)
		if !ok {
			return
		}
		want, err := decodeCreateAnswer(raw)
		if err != nil || want.id == "" {
			t.Fatalf("ours read %+v from %q; encoding/json: %+v, %v", got, raw, want, err)
		}
		if got != want {
			t.Fatalf("ours read %+v from %q; encoding/json %+v", got, raw, want)
		}
	})
}

// TestCreateAnswerFastPath: the answers the simulator writes, and the
// plain ones the docs show, take the hand-written path (else it is dead
// code and the speed-up gone); the others fall back.
func TestCreateAnswerFastPath(t *testing.T) {
	want := []createAnswer{{"1", "pending"}, {"17", "pending"}, {"2", "pending"}, {"3", "pending"}}
	for i, a := range createAnswers {
		if got, ok := readCreateAnswer([]byte(a)); !ok || got != want[i] {
			t.Errorf("%s: read %+v, %v; want %+v", a, got, ok, want[i])
		}
	}
	accepted := map[string]createAnswer{
		` { "id" : 77 , "status" : "onhold" } `:                  {"77", "onhold"},
		`{"requestId":"r","data":{"id":"9","status":"success"}}`: {"9", "success"},
		`{"id":1e3,"status":"pending"}`:                          {"1e3", "pending"},
		`{"id":-0.5,"status":"pending"}`:                         {"-0.5", "pending"},
		`{"id":"é","status":"pending"}`:                          {"é", "pending"},
	}
	for _, a := range trickyAnswers {
		got, ok := readCreateAnswer([]byte(a))
		w, accept := accepted[a]
		if ok != accept || got != w && ok {
			t.Errorf("%q: read %+v, %v; want %+v, %v", a, got, ok, w, accept)
		}
	}
}

// BenchmarkCreateCodec compares the create's body and answer, written and
// read by hand and by encoding/json.
func BenchmarkCreateCodec(b *testing.B) {
	r := CreateRequest{CustomerID: "12345678909", Name: "Ana Gómez", Email: "ana@example.com", Document: "12345678909",
		Phone: "573001234567", Amount: 12345, Currency: "COP", Country: "COL",
		Callback: "https://example.com/webhooks/smartfastpay", Transaction: Transaction{ID: "req-000001"}}
	answer := []byte(createAnswers[0])
	b.Run("body/ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := appendCreateBody(make([]byte, 0, 384), &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("body/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answer/ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := readCreateAnswer(answer); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("answer/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCreateAnswer(answer); err != nil {
				b.Fatal(err)
			}
		}
	})
}
