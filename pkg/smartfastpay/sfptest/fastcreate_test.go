package sfptest

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzCreateBodyMatchesEncodingJSON: whenever the hand-written reader
// accepts a create's body, json.Unmarshal reads the same createWire from
// it without an error (the simulator's validation then sees the same
// fields either way).
func FuzzCreateBodyMatchesEncodingJSON(f *testing.F) {
	for _, b := range []string{
		`{"customer_id":"12345678909","name":"Ana Gómez","email":"ana@example.com","document":"12345678909","phone":"573001234567","amount":123.45,"currency":"COP","country":"COL","callback":"https://example.com/webhooks/smartfastpay","transaction":{"id":"req-1"}}`,
		`{"customer_id":"c","branch":"b","amount":"2.00","transaction":{}}`,
		` { "amount" : 1e3 , "transaction" : { "id" : "x" } } `,
		`{"name":"a","name":"b"}`,
		`{"name":"a","NAME":"b"}`,
		`{"name":null}`,
		`{"name":"a\"b"}`,
		`{"amount":-0}`,
		`{"amount":01}`,
		`{"amount":"1.2.3"}`,
		`{"amount":{}}`,
		`{"transaction":{"id":"a","id":"b"}}`,
		`{"transaction":{"ref":"a"}}`,
		`{"transaction":"a"}`,
		`{"name":"a"} {"name":"b"}`,
		"{\"name\":\"\xff\"}",
		`{}`,
		``,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := readCreateBody(b)
		if !ok {
			return
		}
		var want createWire
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("ours accepted %q; encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("from %q\n ours %s\n json %s", b, gj, wj)
		}
	})
}

// TestCreateBodyFastPath: the body the SmartFastPay client writes takes
// the hand-written path (else the load run measures encoding/json again).
func TestCreateBodyFastPath(t *testing.T) {
	b := `{"customer_id":"12345678909","name":"Ana Gómez","email":"ana@example.com","document":"12345678909","phone":"573001234567","amount":123.45,"currency":"COP","country":"COL","callback":"https://example.com/webhooks/smartfastpay","transaction":{"id":"req-1"}}`
	cw, ok := readCreateBody([]byte(b))
	if !ok || cw.Name == nil || *cw.Name != "Ana Gómez" || string(cw.Amount) != "123.45" || cw.Transaction == nil || *cw.Transaction.ID != "req-1" {
		t.Fatalf("read %+v, %v", cw, ok)
	}
}

// TestCreateAnswerBytes: the hand-written create answer is byte-identical
// to the map encoding/json wrote before, amounts as strings or numbers.
func TestCreateAnswerBytes(t *testing.T) {
	for _, numeric := range []bool{false, true} {
		s := &Server{cfg: Config{NumericAmounts: numeric}}
		for _, p := range []payoutRec{{id: "1", status: "pending", amount: 200}, {id: "987654321", status: "onhold", amount: 9_999_999_999}, {id: "5", status: "success", amount: 205}} {
			want, err := json.Marshal(s.createAnswer(&p))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.appendCreateAnswer(nil, &p); string(got) != string(want) {
				t.Errorf("numeric %v:\n ours %s\n json %s", numeric, got, want)
			}
		}
	}
}
