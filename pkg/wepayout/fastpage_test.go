package wepayout

import (
	"encoding/json"
	"fmt"
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

// paymentAnswers are answers a create or a GET may get: the simulator's
// shapes first, then shapes to decline or read like encoding/json.
var paymentAnswers = []string{
	`{"amount":"R$50.34","created_at":"2026-12-02T10:00:00.123456Z","currency":"BRL","id":1,"invoice":"req-1","status":{"id":1,"name":"Created"}}`,
	`{"amount":5034,"country":"BR","created_at":"2026-12-02T10:00:00.000000Z","currency":"BRL","description":"d","external_id":"req-1","id":7,"merchant_id":1001,"notification_url":"https://e/x","recipient":{"document":{"number":"52998224725","type":"CPF"},"name":"Maria","pix":{"pix_key":"k"}},"status":{"id":3,"name":"Paid"},"status_detail":{"code":"WE0001","detail":"x"},"updated_at":"2026-12-02T11:00:00.000000Z"}`,
	`{"data":{"id":"9","invoice":"a","status":{"id":"7","name":"Awaiting"},"amount":"12.30","created_at":"2024-09-25 15:55:18"}}`,
	`{"id":5,"data":{"id":6}}`,
	`{"data":5,"id":3}`,
	`{"data":[1],"invoice":"x"}`,
	`{"Data":{"id":1}}`,
	`{"ID":2,"id":1}`,
	`{"id":1,"id":2}`,
	`{"id":1,"invoice":"a\u0062"}`,
	`{"id":1,"invoice":null}`,
	`{"id":1,"amount":"1e3"}`,
	`{"id":1,"amount":1e3}`,
	`{"id":1,"status":"3"}`,
	`{"id":1,"status":{"id":"x"}}`,
	`{"id":1,"status_detail":null}`,
	`{"id":1,"status_detail":"x"}`,
	`{"id":1,"created_at":"not a time"}`,
	`{"id":1,"created_at":null}`,
	`{"id":null}`,
	`{"id":1} x`,
	`{"id":1,"Status":{"id":3}}`,
	`{"id":1,"ſtatus":{"id":3}}`,
	`{"id":{"a":1}}`,
	`{}`,
	`{"id":1,"amount":-5,"status":{"ID":3},"created_at":"2024-09-25T15:55:18\u002B03:00"}`,
	`{"id":"1","merchant_id":"7","amount":50.3,"status":{"id":"7","name":"Awaiting"},"updated_at":" 2024-09-25 15:55:18 "}`,
	`{"id":1,"status":{"id":"99999999999999999999"}}`,
}

// FuzzPaymentMatchesEncodingJSON: whenever the hand-written reader accepts
// a payment answer, encoding/json (the path before it: payload, then
// json.Unmarshal) reads the same Payment without an error; and
// decodePayment, whichever path it takes, gives encoding/json's Payment
// and error.
func FuzzPaymentMatchesEncodingJSON(f *testing.F) {
	for _, a := range paymentAnswers {
		f.Add([]byte(a))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var old Payment
		oldErr := json.Unmarshal(payload(raw), &old)
		if p, err := decodePayment(raw); fmt.Sprint(err) != fmt.Sprint(oldErr) || !reflect.DeepEqual(p, old) {
			t.Fatalf("from %q decodePayment gives %+v, %v; encoding/json %+v, %v", raw, p, err, old, oldErr)
		}
		got, ok := readPaymentAnswer(raw)
		if !ok {
			return
		}
		var want Payment
		if err := json.Unmarshal(payload(raw), &want); err != nil {
			t.Fatalf("ours read %q; encoding/json: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("from %q\n ours %+v\n json %+v", raw, got, want)
		}
	})
}

// TestReadPaymentAnswer: the simulator's and the docs' shapes take the
// fast path; the odd ones are declined.
func TestReadPaymentAnswer(t *testing.T) {
	accepted := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 15: true, 18: true, 19: true, 24: true, 25: true, 26: true}
	for i, a := range paymentAnswers {
		if _, ok := readPaymentAnswer([]byte(a)); ok != accepted[i] {
			t.Errorf("%s: accepted %v, want %v", a, ok, accepted[i])
		}
	}
	p, ok := readPaymentAnswer([]byte(paymentAnswers[2]))
	if !ok || p.ID != "9" || p.Invoice != "a" || p.Status.ID != 7 || p.Amount != 1230 || p.CreatedAt.IsZero() {
		t.Fatalf("read %+v, %v", p, ok)
	}
}

// BenchmarkPaymentAnswer compares the hand-written payment reader with
// payload + encoding/json on the simulator's create answer and GET answer.
func BenchmarkPaymentAnswer(b *testing.B) {
	for _, a := range []struct{ name, raw string }{{"create", paymentAnswers[0]}, {"get", paymentAnswers[1]}} {
		raw := []byte(a.raw)
		b.Run(a.name+"/ours", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := readPaymentAnswer(raw); !ok {
					b.Fatal("declined")
				}
			}
		})
		b.Run(a.name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var p Payment
				if err := json.Unmarshal(payload(raw), &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// plainFields are values of a payment's typed members, each with the
// plain readers that take it: i plainID, c plainCents, s plainStatus, t
// plainTime. The simulator's and the docs' shapes come first; then one
// value per reason a reader declines.
var plainFields = []struct{ v, takenBy string }{
	{`1`, "ic"},
	{`"9"`, "ic"},
	{`"R$50.34"`, "ic"},
	{`5034`, "ic"},
	{`50.34`, "ic"},
	{`{"id":1,"name":"Created"}`, "s"},
	{`{"id":"7","name":"Awaiting"}`, "s"},
	{`"2026-12-02T10:00:00.123456Z"`, "it"},
	{`"2024-09-25 15:55:18"`, "it"},
	// Amounts.
	{`50.3`, "ic"},
	{`0.05`, "ic"},
	{`0`, "ic"},
	{`"50"`, "ic"},
	{`"050.5"`, "ic"},
	{`"R$0.5"`, "ic"},
	{`05`, ""},
	{`00.5`, ""},
	{`50.345`, "i"},
	{`"50."`, "i"},
	{`".5"`, "i"},
	{`"R$"`, "i"},
	{`"R$R$5"`, "i"},
	{`-5`, "i"},
	{`"-5.00"`, "i"},
	{`1e3`, "i"},
	{`"1.2.3"`, "i"},
	{`"1.2,3"`, "i"},
	{`999999999999999`, "ic"},
	{`"999999999999999.99"`, "ic"},
	{`1234567890123456`, "i"},
	{`"99999999999999999999"`, "i"},
	{`"R$ 1.234,56"`, "i"},
	{`"5\u0030"`, ""},
	{`"`, ""},
	{`"5`, ""},
	{`1x`, ""},
	{` 7 `, "i"},
	{"\"\xff\"", ""},
	{`null`, ""},
	{`""`, "it"},
	{`true`, ""},
	// Statuses.
	{`{}`, "s"},
	{` { "id" : 3 } `, "s"},
	{`{"id":1,"id":2}`, "s"},
	{`{"name":"a","name":"b"}`, "s"},
	{`{"id":-0}`, "s"},
	{`{"id":-7}`, "s"},
	{`{"id":"007"}`, "s"},
	{`{"id":1,"id":"x"}`, ""},
	{`{"ID":1}`, ""},
	{`{"Name":"x"}`, ""},
	{`{"id":1,"x":2}`, ""},
	{`{"id":1.0}`, ""},
	{`{"id":1e2}`, ""},
	{`{"id":"x"}`, ""},
	{`{"id":""}`, ""},
	{`{"id":null}`, ""},
	{`{"id":"-7"}`, ""},
	{`{"id":" 7"}`, ""},
	{`{"name":null}`, ""},
	{`{"name":7}`, ""},
	{`{"name":"a\u0062"}`, ""},
	{`{"id":1} x`, ""},
	{`{"id":1}}`, ""},
	{`{"id":1,}`, ""},
	{`{"id":01}`, ""},
	{`{"id":1234567890123456}`, ""},
	{`{"id":"1234567890123456"}`, ""},
	{`{"id":"99999999999999999999"}`, ""},
	{`[]`, ""},
	{`"id":1}`, ""},
	// Times.
	{`"2024-09-25T15:55:18"`, "it"},
	{`" 2024-09-25 15:55:18 "`, "it"},
	{`"2024-06-13T10:00:00+03:00"`, "it"},
	{`"2024-06-13T10:00:00.000000-03:00"`, "it"},
	{`"not a time"`, "i"},
	{`"2024-02-30T00:00:00Z"`, "i"},
	{`"2024-09-25 15:55:18"x`, ""},
	{`"2024-09-25T15:55:18\u002B03:00"`, ""},
}

// TestPlainPaymentFields pins which values each plain reader takes: the
// common shapes must (else readPayment pays the UnmarshalJSON methods
// again), the others are left to the methods.
func TestPlainPaymentFields(t *testing.T) {
	for _, c := range plainFields {
		v := []byte(c.v)
		_, i := plainID(v)
		_, cents := plainCents(v)
		_, s := plainStatus(v)
		_, tm := plainTime(v)
		var got string
		for _, r := range []struct {
			ok   bool
			name string
		}{{i, "i"}, {cents, "c"}, {s, "s"}, {tm, "t"}} {
			if r.ok {
				got += r.name
			}
		}
		if got != c.takenBy {
			t.Errorf("%s is taken by %q, want %q", c.v, got, c.takenBy)
		}
	}
}

// FuzzPaymentFieldMatchesUnmarshalJSON holds each plain reader to its
// type: whenever it takes a value, json.Unmarshal into the type, and the
// type's UnmarshalJSON called directly (readPayment's path before), read
// the same value without an error. (When it declines, readPayment calls
// the method: its value and error by construction.) Then, in a payment:
// whenever readPaymentAnswer takes an object holding the value under a
// typed key, json.Unmarshal reads the same Payment from it without an
// error.
func FuzzPaymentFieldMatchesUnmarshalJSON(f *testing.F) {
	for _, c := range plainFields {
		f.Add([]byte(c.v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		matchesUnmarshal(t, v, plainID)
		matchesUnmarshal(t, v, plainCents)
		matchesUnmarshal(t, v, plainStatus)
		matchesUnmarshal(t, v, plainTime)
		for _, key := range []string{"id", "merchant_id", "amount", "status", "created_at", "updated_at"} {
			obj := append([]byte(`{"`+key+`":`), v...)
			obj = append(obj, '}')
			got, ok := readPaymentAnswer(obj)
			if !ok {
				continue
			}
			var want Payment
			if err := json.Unmarshal(obj, &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("readPayment read %+v from %q; encoding/json %+v, %v", got, obj, want, err)
			}
		}
	})
}

// matchesUnmarshal checks plain against json.Unmarshal and the method on v.
func matchesUnmarshal[T any, PT interface {
	*T
	json.Unmarshaler
}](t *testing.T, v []byte, plain func([]byte) (T, bool)) {
	t.Helper()
	got, ok := plain(v)
	if !ok {
		return
	}
	var want, direct T
	if err := json.Unmarshal(v, PT(&want)); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%T: read %+v from %q; json.Unmarshal %+v, %v", got, got, v, want, err)
	}
	if err := PT(&direct).UnmarshalJSON(v); err != nil || !reflect.DeepEqual(got, direct) {
		t.Fatalf("%T: read %+v from %q; UnmarshalJSON %+v, %v", got, got, v, direct, err)
	}
}
