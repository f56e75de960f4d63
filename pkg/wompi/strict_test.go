package wompi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// strictCases are bodies at the edges of what decodeStrict accepts.
func strictCases() []string {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	many := func(n int, last string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			b.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
		}
		b.WriteString(`"` + last + `":2}`)
		return b.String()
	}
	return []string{
		``, ` `, `{}`, `[]`, ` {"a" : [1, 2.5, -0, 1e3, 1E+3, -1.5e-3, true, false, null, "s"] } `, "{\"a\":1}\n\t\r ",
		`{"a":1,}`, `{"a":1 "b":2}`, `{"a" 1}`, `{,}`, `[1,]`, `[,1]`, `{"a":1}}`, `{"a":1} 5`, `{"a":1}{}`, `"x"`, `5`, `nul`, `truex`, `[tru]`,
		`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`, `{"a":0x10}`, `{"a":1.5E-07}`,
		`{"a":"\u00e9\n\t\"\\\/\b\f\r"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d"}`, `{"a":"\udc00x"}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		"{\"a\":\"\xff\xfe\"}", "{\"a\":\"caf\xc3\xa9\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}", `{"a":"unterminated}`, `{"a":"\`,
		`{"id":1,"ID":2}`, `{"id":1,"id":2}`, `{"k":1,"` + "\u212a" + `":2}`, `{"s":1,"` + "\u017f" + `":2}`, `{"é":1,"É":2}`,
		`{"a":{"b":1,"B":2}}`, `[{"a":1},{"a":2}]`, many(20, "K0"), many(20, "k"), many(3, "kxx"), many(40, "KXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
		deep(maxEventDepth - 1), deep(maxEventDepth), deep(maxEventDepth + 1), `[` + deep(maxEventDepth-1) + `]`,
		`{"a":[` + strings.Repeat("[", 40) + `x`, "\ufeff{}", `{"a":1}` + "\x00", `{"":1,"":2}`, `{"a\u0000":1}`,
		// The unquoting of escapes: surrogates paired, lone, reversed or
		// followed by a non-escape; hex digits of both cases; bad ones.
		`{"a":"\uD83D\uDE00"}`, `{"a":"\ude00\ud83d"}`, `{"a":"\ud83d\ud83d\ude00"}`, `{"a":"\ud83d\u0041"}`, `{"a":"\ud83dx"}`,
		`{"a":"\ud83d\n"}`, `{"a":"\ud83d"}`, `{"a":"x\udfff"}`, `{"a":"\u00E9\u00e9\u20AC"}`, `{"a":"\u00g0"}`, `{"a":"\u00"}`,
		`{"a":"\a"}`, `{"a":"\\\/\"\b"}`, `{"\u0061":1,"a":2}`, `{"a\n":1,"A\n":2}`, `{"a":"caf\u00e9 caf` + "\u00e9" + `"}`,
		"{\"a\":\"\\u0041\t\"}", "{\"a\":\"\\n\x1f\"}",
	}
}

// TestDecodeStrictMatchesTokens: the one-pass parser reads every edge case
// as the Decoder.Token parser it replaced: the same value, or an error of
// the same kind.
func TestDecodeStrictMatchesTokens(t *testing.T) {
	for _, body := range strictCases() {
		checkStrict(t, []byte(body))
	}
}

func checkStrict(t *testing.T, body []byte) {
	t.Helper()
	got, err := decodeStrict(body)
	want, werr := decodeStrictTokens(body)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%q: %v, the reference %v", body, err, werr)
	}
	if err != nil {
		if got != nil || !errors.Is(err, ErrMalformedEvent) || errors.Is(err, ErrAmbiguousEvent) != errors.Is(werr, ErrAmbiguousEvent) {
			t.Fatalf("%q: %v (%v), the reference %v", body, err, got, werr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %#v, the reference %#v", body, got, want)
	}
}

// FuzzDecodeStrict holds decodeStrict to the Decoder.Token parser on
// arbitrary bodies.
func FuzzDecodeStrict(f *testing.F) {
	for _, body := range strictCases() {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"event":"transaction.updated","data":{"transaction":{"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","status":"FAILED","amountInCents":7500000}},"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},"timestamp":1747673128600}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkStrict(t, body)
	})
}

// FuzzFoldKeyFast: the ASCII shortcut folds every key as foldKey does.
func FuzzFoldKeyFast(f *testing.F) {
	for _, k := range []string{"", "id", "ID", "Id", "amountInCents", "k", "\u212a", "s", "\u017f", "é", "a_B-9", "\xff"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := foldKeyFast(k), foldKey(k); got != want {
			t.Fatalf("%q folds to %q, foldKey says %q", k, got, want)
		}
	})
}

// webhookVector is Wompi's documented transaction.updated example.
const webhookVector = `{"event":"transaction.updated","data":{"transaction":{"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","status":"FAILED","amountInCents":7500000}},"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},"timestamp":1747673128600}`

// BenchmarkDecodeStrict: the one-pass parser on a webhook body, against
// the Decoder.Token parser it replaced (BenchmarkDecodeStrictTokens).
func BenchmarkDecodeStrict(b *testing.B) {
	body := []byte(webhookVector)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeStrict(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStrictTokens(b *testing.B) {
	body := []byte(webhookVector)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeStrictTokens(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEvent: a whole webhook's verification and decoding.
func BenchmarkParseEvent(b *testing.B) {
	body := []byte(webhookVector)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(body, "", "prod_events_7b193c8afd7b47949f90d443cb1e1742"); err != nil {
			b.Fatal(err)
		}
	}
}

// valuesBody is an event-shaped body of n JSON values in all: the root, an
// array and n-2 zeros in it.
func valuesBody(n int) string {
	return `{"a":[` + strings.TrimSuffix(strings.Repeat("0,", n-2), ",") + `]}`
}

// A body of maxEventValues values parses; one more is refused as
// malformed, by the one-pass parser and its reference alike.
func TestEventValueCap(t *testing.T) {
	at, over := valuesBody(maxEventValues), valuesBody(maxEventValues+1)
	if _, err := decodeStrict([]byte(at)); err != nil {
		t.Fatalf("%d values: %v", maxEventValues, err)
	}
	_, err := decodeStrict([]byte(over))
	if !errors.Is(err, ErrMalformedEvent) || !strings.Contains(err.Error(), "more than 4096 JSON values") {
		t.Fatalf("%d values: %v", maxEventValues+1, err)
	}
	checkStrict(t, []byte(at))
	checkStrict(t, []byte(over))
	// Counted across objects and nesting too: keys are not values, their
	// values are.
	obj := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"o":{`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":[{}]`, i)
		}
		b.WriteString("}}")
		return b.String()
	}
	n := (maxEventValues - 2) / 2 // the root, "o"'s object, and two per key
	if _, err := decodeStrict([]byte(obj(n))); err != nil {
		t.Fatalf("%d values: %v", 2+2*n, err)
	}
	if _, err := decodeStrict([]byte(obj(n + 1))); !errors.Is(err, ErrMalformedEvent) {
		t.Fatalf("%d values: %v", 2+2*(n+1), err)
	}
}
