package wompi

// decodeStrict refuses a body that is not UTF-8 and unquotes escaped
// strings itself (unquote, hex4). These tests hold unquote to
// encoding/json, check its one allocation, that duplicate detection still
// sees through escapes, and that the UTF-8 refusal refuses no genuine body
// (accents, emoji, U+2028) nor changes any signed value.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// unquoteStrings are the insides of JSON strings (between the quotes),
// chosen at the edges of unquote.
func unquoteStrings() []string {
	long := strings.Repeat("a", 1<<16)
	return []string{
		// \u at the very end, and short/odd hex
		`\u0041`, `x\u0041`, `\u004`, `\u00`, `\u0`, `\u`, `\`, `x\`, `\u004g`, `\u+041`, `\u 041`, `\u-041`,
		`\uabcd`, `\uABCD`, `\uAbCd`, `\uaBcD`, `\uFFFF`, `\uffff`, `\uFFFE`, `\uFEFF`, `\u0000`, `\u001f`, `\u007f`, `\u0080`,
		`\u07ff`, `\u0800`, `\u2028`, `\u2029`, `\uD7FF`, `\uE000`,
		// surrogates
		`\uD800`, `\ud800`, `\uDBFF`, `\uDC00`, `\udfff`, `\uD800\uDC00`, `\ud800\udc00`, `\uD83D\uDE00`, `\ud83d\ude00`,
		`\uDBFF\uDFFF`, `\uD800\uD800`, `\uDC00\uD800`, `\uDC00\uDC00`, `\uD800\uDC00\uDC00`, `\uD800\uD800\uDC00`,
		`\uD800\u`, `\uD800\uD`, `\uD800\uDC`, `\uD800\uDC0`, `\uD800\uDC0"`, `\uD800\uDC0x`, `\uD800\uDCxx`,
		`\uD800\u0041`, `\uD800\u00e9`, `\uD800\n`, `\uD800\\`, `\uD800\"`, `\uD800\/`, `\uD800\x`, `\uD800\U DC00`,
		`\uD800\UDC00`, `\uD800A`, `\uD800é`, `\uD800😀`, `\uD800\uDC00é`, `é\uD800`, `\uD800 \uDC00`,
		`\uD800\\uDC00`, `\uD83D\uDE00\uD83D`, `\uD83D\uDE00\uD83D\uDE0`,
		// simple escapes and invalid ones
		`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\'`, `\a`, `\v`, `\0`, `\x41`, `\U0041`, `\é`, `\😀`, `\ `, "\\\x7f",
		"\\\n", "\\\t", `\\\\`, `\\\"`, `\\u0041`,
		// escaped NUL, raw control bytes, DEL
		`\u0000x`, "a\x00b", "a\x01", "\x1f", "\t", "\n", "\r", "a\x7fb", "\x7f", "\x7f\\n",
		// escapes beside multi-byte UTF-8
		`é\n`, `\né`, `José\u00e9`, `Bogot\u00e1`, `Bogotá\/`, `😀\n😀`, `\u00e9é\u00E9`, "\u2028\\n\u2029", `日本\t語`,
		"\U0010FFFF\\n", "\uFFFD\\uFFFD", "\uFEFF\\n",
		// long strings
		long + `\n`, `\n` + long, strings.Repeat(`\uD83D\uDE00`, 5000), strings.Repeat(`\uD800`, 5000),
		strings.Repeat(`é\u00e9`, 4000), strings.Repeat(`\\`, 10000) + `\n`, strings.Repeat(`\u0800`, 3000),
		long + `\u004`, long + `\uD800\uDC0`,
	}
}

// TestUnquoteMatchesEncodingJSON: on valid UTF-8, unquote
// (through decodeStrict) and json.Unmarshal of the same quoted string
// agree on error-or-not and on the value; and decodeStrict agrees with
// decodeStrictTokens (checkStrict) with the string as a value and as a key.
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, in := range unquoteStrings() {
		quoted := `"` + in + `"`
		if !utf8.ValidString(quoted) {
			t.Fatalf("case %.40q is not valid UTF-8", in)
		}
		var want string
		werr := json.Unmarshal([]byte(quoted), &want)
		got, err := decodeStrict([]byte(quoted))
		if (err == nil) != (werr == nil) {
			t.Errorf("%.60q: decodeStrict %v, json.Unmarshal %v", in, err, werr)
			continue
		}
		if err == nil && got != want {
			t.Errorf("%.60q: decodeStrict %.60q, json.Unmarshal %.60q", in, got, want)
		}
		checkStrict(t, []byte(quoted))
		checkStrict(t, []byte(`{"k":`+quoted+`}`))
		checkStrict(t, []byte(`{`+quoted+`:1,"z":[`+quoted+`]}`))
	}
}

// unquotePieces are the tokens random strings are built from.
var unquotePieces = []string{
	`\u`, `\`, `u`, `U`, `D8`, `d8`, `DB`, `DC`, `dc`, `DF`, `00`, `0`, `e9`, `E9`, `41`, `FF`, `fd`, `g`, `"`, `\"`,
	`\\`, `\/`, `\n`, `\t`, `\b`, `\f`, `\r`, `\'`, `\x`, `a`, `é`, `😀`, "\u2028", "\x7f", "\x00", "\x1f", " ",
	`\uD800`, `\uDC00`, `\uD83D`, `\uDE00`, `\u00e9`, `\u0000`, `\u2028`, `\uFFFD`, "\uFFFD",
}

// TestUnquoteRandom: 200 000 strings made of the pieces above,
// each unquoted by unquote and json.Unmarshal: same error-or-not, same
// value, and never longer than the raw input (the Grow bound).
func TestUnquoteRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(24))
	var b strings.Builder
	n, ok := 0, 0
	for range 200000 {
		b.Reset()
		for k := rng.Intn(12); k >= 0; k-- {
			b.WriteString(unquotePieces[rng.Intn(len(unquotePieces))])
		}
		in := b.String()
		// A string the scanner would cut at an unescaped quote is not one
		// string: compare only the insides that decodeStrict reads whole.
		if end := unquoteEnd(in); end != len(in) {
			continue
		}
		n++
		raw := []byte(in)
		got, err := unquote(raw)
		var want string
		werr := json.Unmarshal([]byte(`"`+in+`"`), &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: unquote %v, json.Unmarshal %v", in, err, werr)
		}
		if err != nil {
			continue
		}
		ok++
		if got != want {
			t.Fatalf("%q: unquote %q, json.Unmarshal %q", in, got, want)
		}
		if len(got) > len(raw) {
			t.Fatalf("%q: %d bytes out of %d in", in, len(got), len(raw))
		}
	}
	t.Logf("%d strings compared, %d valid", n, ok)
}

// unquoteEnd is where strictParser.string would end the string in (the
// index of its first unescaped quote), len(in) if none.
func unquoteEnd(in string) int {
	for i := 0; i < len(in); i++ {
		switch in[i] {
		case '"':
			return i
		case '\\':
			i++
		}
	}
	return len(in)
}

// TestUnquoteEveryEscapePair: every \uXXXX for X in the BMP
// alone, and every high surrogate with low-surrogate / boundary seconds,
// against json.Unmarshal.
func TestUnquoteEveryEscapePair(t *testing.T) {
	const hexd = "0123456789abcdef"
	esc := func(r int, upper bool) string {
		s := `\u` + string([]byte{hexd[r>>12&15], hexd[r>>8&15], hexd[r>>4&15], hexd[r&15]})
		if upper {
			s = `\u` + strings.ToUpper(s[2:])
		}
		return s
	}
	check := func(in string) {
		got, err := unquote([]byte(in))
		var want string
		werr := json.Unmarshal([]byte(`"`+in+`"`), &want)
		if (err == nil) != (werr == nil) || got != want {
			t.Fatalf("%q: unquote %q %v, json.Unmarshal %q %v", in, got, err, want, werr)
		}
		if len(got) > len(in) {
			t.Fatalf("%q: %d bytes out of %d in", in, len(got), len(in))
		}
	}
	for r := 0; r < 0x10000; r++ {
		check(esc(r, r&1 == 0))
		check(esc(r, false) + "x")
	}
	seconds := []int{0x0000, 0x0041, 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDC01, 0xDE00, 0xDFFF, 0xE000, 0xFFFD}
	for hi := 0xD800; hi < 0xE000; hi += 0x11 {
		for _, lo := range seconds {
			check(esc(hi, false) + esc(lo, true))
			check(esc(hi, true) + esc(lo, false) + "é")
		}
	}
}

// TestUnquoteOneAllocation: a string with an escape costs exactly
// one allocation, for the worst ratios of output to input too: the result
// never outgrows Grow(len(raw)).
func TestUnquoteOneAllocation(t *testing.T) {
	for _, in := range []string{
		`\n`, `a\n`, `\u0041`, `\u07ff`, `\u0800`, `\uffff`, `\uD800`, `\uDC00`, `\uD83D\uDE00`, `\uDBFF\uDFFF`,
		`é\u00e9`, "😀\\n😀", "\u2028\\u2028", `\uD800\uD800`, `\uD800\u0041`, `\uD800\n`,
		strings.Repeat(`\uD83D\uDE00`, 1000), strings.Repeat(`\uD800`, 1000), strings.Repeat(`\u0800`, 1000),
		strings.Repeat(`\uffff`, 1000), strings.Repeat("😀", 1000) + `\n`, strings.Repeat(`\/`, 1000),
	} {
		raw := []byte(in)
		out, err := unquote(raw)
		if err != nil || out == "" {
			t.Fatalf("%.40q: %q %v", in, out, err)
		}
		if len(out) > len(raw) {
			t.Fatalf("%.40q: %d bytes out of %d in", in, len(out), len(raw))
		}
		if n := testing.AllocsPerRun(50, func() { _, _ = unquote(raw) }); n != 1 {
			t.Errorf("%.40q: %v allocations, want 1", in, n)
		}
	}
}

// TestEscapedDuplicateKeys: keys spelled with escapes that unquote
// (and then fold) to another key of the same object are ErrAmbiguousEvent,
// in small objects and past smallObject (the map), and agree with the
// reference.
func TestEscapedDuplicateKeys(t *testing.T) {
	pairs := [][2]string{
		{`\u0069d`, `id`}, {`\u0049D`, `id`}, {`i\u0064`, `ID`}, {`\u0069\u0064`, `Id`},
		{`\u212a`, `k`}, {`\u212A`, `K`}, {"\u212a", `\u006b`}, {`\u017f`, `S`}, {`\u017F`, `\u0073`},
		{`\uD800`, `\uFFFD`}, {`\uD800`, "\uFFFD"}, {`\uDC00x`, "\uFFFDX"}, {`\uD800\u0041`, "\uFFFDa"},
		{`\uD83D\uDE00`, "😀"}, {`\ud83d\ude00`, `\uD83D\uDE00`}, {`a\/b`, `a/b`}, {`\u0000`, `\u0000`},
		{`Bogot\u00e1`, "BOGOTÁ"}, {`jos\u00C9`, "José"}, {`\u2028`, "\u2028"}, {`\n`, `\u000a`}, {`\"`, `\u0022`},
	}
	for _, p := range pairs {
		for _, filler := range []int{0, 20} {
			var b strings.Builder
			b.WriteString(`{"data":{`)
			for i := range filler {
				b.WriteString(`"f` + string(rune('a'+i)) + `":1,`)
			}
			b.WriteString(`"` + p[0] + `":1,"` + p[1] + `":2}}`)
			body := []byte(b.String())
			_, err := decodeStrict(body)
			if !errors.Is(err, ErrAmbiguousEvent) {
				t.Errorf("%s: %v, want ErrAmbiguousEvent", body[:min(len(body), 80)], err)
			}
			checkStrict(t, body)
		}
	}
	// Keys that differ only after unquoting are not duplicates.
	for _, body := range []string{`{"\uD800\uDC00":1,"\uFFFD\uFFFD":2}`, `{"\uD800\\uDC00":1,"\uFFFD\\uDC00x":2}`, `{"a\\":1,"a":2}`} {
		if _, err := decodeStrict([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
		checkStrict(t, []byte(body))
	}
}

// TestUTF8Refusal: what the whole-body UTF-8 refusal accepts and
// refuses, each against decodeStrictTokens and against what encoding/json
// alone says.
func TestUTF8Refusal(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		accept bool
	}{
		{"accents", `{"name":"José Pérez","city":"Bogotá","ñ":"Ñandú"}`, true},
		{"4-byte emoji", `{"memo":"pago 😀🇨🇴","😀":1}`, true},
		{"U+10FFFF", "{\"x\":\"\U0010FFFF\"}", true},
		{"noncharacters U+FFFE U+FFFF", "{\"x\":\"\uFFFE\uFFFF\"}", true},
		{"U+2028 U+2029 raw", "{\"x\":\"a\u2028b\u2029c\"}", true},
		{"U+FEFF inside a string", "{\"x\":\"\uFEFFa\"}", true},
		{"DEL raw", "{\"x\":\"a\x7fb\"}", true},
		{"BOM before the object", "\uFEFF{\"x\":1}", false},     // JSON has no BOM: encoding/json refuses it too
		{"BOM after the object", "{\"x\":1}\uFEFF", false},      // trailing data
		{"BOM as whitespace", "{\uFEFF\"x\":1}", false},         // not JSON whitespace
		{"CESU-8 surrogate", "{\"x\":\"\xed\xa0\x80\"}", false}, // not UTF-8
		{"overlong slash", "{\"x\":\"\xc0\xaf\"}", false},
		{"Latin-1 é", "{\"x\":\"Jos\xe9\"}", false},
		{"truncated 4-byte", "{\"x\":\"\xf0\x9f\x98\"}", false},
		{"invalid byte outside strings", "{\"x\":1 \xff}", false},
	}
	for _, tc := range cases {
		_, err := decodeStrict([]byte(tc.body))
		if (err == nil) != tc.accept {
			t.Errorf("%s: %v, accept %v", tc.name, err, tc.accept)
		}
		checkStrict(t, []byte(tc.body))
		if tc.accept {
			var v any
			if jerr := json.Unmarshal([]byte(tc.body), &v); jerr != nil {
				t.Errorf("%s: accepted, but encoding/json refuses: %v", tc.name, jerr)
			}
		}
	}
}

// TestSignedAccentsUnchanged: genuine bodies with accents, emoji,
// U+2028 and characters json.Marshal escapes (& < >) verify, and the
// signed values the checksum reads are exactly the Go strings signed:
// checked against a SHA-256 computed here by hand, as Wompi computes it.
func TestSignedAccentsUnchanged(t *testing.T) {
	const id = "04a6e53d-a244-4140-ab9e-48fa541f9fe5"
	names := []string{"José Pérez", "Bogotá D.C.", "Ñandú & Cía <S.A.S>", "María\u2028José\u2029", "pago 😀 🇨🇴", "\uFEFFBOM inside", "ü\u00e9\u0301"}
	at := time.UnixMilli(1747673128600)
	props := []string{"transaction.id", "transaction.status", "transaction.amountInCents", "transaction.payee.name"}
	for _, name := range names {
		data := map[string]any{"transaction": map[string]any{
			"id": id, "status": "FAILED", "amountInCents": 7500000, "payoutId": "p-1",
			"payee": map[string]any{"name": name, "document": "1010"},
		}}
		body, sum, err := SignEvent(EventTransactionUpdated, data, props, at, vectorSecret)
		if err != nil {
			t.Fatalf("%q: sign: %v", name, err)
		}
		h := sha256.Sum256([]byte(id + "FAILED" + "7500000" + name + "1747673128600" + vectorSecret))
		if want := hex.EncodeToString(h[:]); sum != want {
			t.Fatalf("%q: SignEvent checksum %s, by hand %s", name, sum, want)
		}
		ev, err := ParseEvent(body, sum, vectorSecret)
		if err != nil {
			t.Fatalf("%q: %s: %v", name, body, err)
		}
		if ev.Transaction == nil || ev.Transaction.Payee.Name != name || ev.Transaction.ID != id || ev.Transaction.AmountInCents != 7500000 {
			t.Fatalf("%q: decoded %+v", name, ev.Transaction)
		}
		// The same body written by hand with the name raw (no escapes).
		raw := strings.Replace(string(body), string(mustMarshal(t, name)), `"`+strings.ReplaceAll(name, `"`, `\"`)+`"`, 1)
		if ev2, err := ParseEvent([]byte(raw), sum, vectorSecret); err != nil || ev2.Transaction.Payee.Name != name {
			t.Fatalf("%q raw: %s: %v", name, raw, err)
		}
		// And with every non-ASCII rune of the name \u-escaped.
		var esc strings.Builder
		for _, r := range name {
			if r < 0x80 {
				esc.WriteRune(r)
				continue
			}
			var sb strings.Builder
			for _, u := range utf16Of(r) {
				sb.WriteString(`\u` + strings.ToUpper(hex.EncodeToString([]byte{byte(u >> 8), byte(u)})))
			}
			esc.WriteString(sb.String())
		}
		escBody := strings.Replace(string(body), string(mustMarshal(t, name)), `"`+esc.String()+`"`, 1)
		if ev3, err := ParseEvent([]byte(escBody), sum, vectorSecret); err != nil || ev3.Transaction.Payee.Name != name {
			t.Fatalf("%q escaped: %s: %v", name, escBody, err)
		}
		var round map[string]any
		if err := json.Unmarshal(ev.Data, &round); err != nil {
			t.Fatal(err)
		}
		if got := round["transaction"].(map[string]any)["payee"].(map[string]any)["name"]; !reflect.DeepEqual(got, name) {
			t.Fatalf("%q: Data round-trips to %q", name, got)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func utf16Of(r rune) []uint16 {
	if r < 0x10000 {
		return []uint16{uint16(r)}
	}
	r -= 0x10000
	return []uint16{uint16(0xD800 + (r >> 10)), uint16(0xDC00 + (r & 0x3FF))}
}

// TestLoneSurrogateSigned: a signed value spelled with a lone
// surrogate reads as U+FFFD on both sides (checksum and decoded value):
// what was signed is what is returned.
func TestLoneSurrogateSigned(t *testing.T) {
	three := []string{"transaction.id", "transaction.status", "transaction.amountInCents", "transaction.payee.name"}
	data := `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":1,"payee":{"name":"a\uD800\u0041\uDC00b"}}}`
	body, sum := strictEdgeSigned(t, data, three)
	ev, err := ParseEvent([]byte(body), sum, vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ev.Transaction.Payee.Name, "a\uFFFDA\uFFFDb"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	h := sha256.Sum256([]byte("tx-aFAILED1" + "a\uFFFDA\uFFFDb" + "1747673128600" + vectorSecret))
	if hex.EncodeToString(h[:]) != sum {
		t.Fatalf("checksum read other values than the decoded ones")
	}
}

// TestLatin1InUnsignedFieldRefused: a body whose checksum is right and
// whose signed values are ASCII, but with one Latin-1 byte in an unsigned
// field (payee.name), is refused whole with ErrMalformedEvent (the tracker
// answers 401 and counts a signature failure). It was accepted before the
// UTF-8 check, the byte read as U+FFFD. Wompi's bodies are UTF-8.
func TestLatin1InUnsignedFieldRefused(t *testing.T) {
	three := []string{"transaction.id", "transaction.status", "transaction.amountInCents"}
	good := `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":1,"payee":{"name":"Jos\u00e9"}}}`
	body, sum := strictEdgeSigned(t, good, three)
	if _, err := ParseEvent([]byte(body), sum, vectorSecret); err != nil {
		t.Fatalf("UTF-8 body: %v", err)
	}
	latin1 := strings.Replace(body, `Jos\u00e9`, "Jos\xe9", 1)
	_, err := ParseEvent([]byte(latin1), sum, vectorSecret)
	if !errors.Is(err, ErrMalformedEvent) || errors.Is(err, ErrInvalidChecksum) {
		t.Fatalf("Latin-1 in an unsigned field: %v", err)
	}
	t.Logf("checksum right, Latin-1 byte in unsigned payee.name: %v", err)
}
