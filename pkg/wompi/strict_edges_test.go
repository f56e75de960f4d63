package wompi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeStrict's edges (from a review): edge cases held to the
// Decoder.Token oracle, foldKeyFast held to foldKey exhaustively, the
// webhook's signed tree against its decoded event, and the parser's cost on
// bodies at the tracker's 1 MiB cap.

// strictEdgeEscapes are string bodies (between the quotes) at the edges of
// JSON strings: every escape form, \u in both cases, surrogates, raw
// invalid, overlong and special UTF-8.
var strictEdgeEscapes = []string{
	`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
	`\u00e9`, `\u00E9`, `\uabcd`, `\uABCD`, `\uAbCd`, `\u0000`, `\u001f`, `\u001F`, `\u0020`, `\u007f`, `\u0080`, `\u2028`, `\u2029`, `\ufeff`, `\uFFFD`, `\uffff`,
	`\ud83d\ude00`, `\uD83D\uDE00`, `\uD83D\ude00`, `\ud83d`, `\uD83D`, `\ude00`, `\uDE00`, `\ud83dx`, `\ud83d\u0041`, `\ud83d\ud83d`, `\ude00\ud83d`, `\ud83d\ude00\ude00`,
	`\udbff\udfff`, `\ud800\udc00`, `\ud800\\`, `\ud800\n`, `\ud800\u`, `\ud800\ud`,
	`\u`, `\u1`, `\u12`, `\u123`, `\u12G4`, `\u-123`, `\u+123`, `\u 123`, `\U0041`, `\x41`, `\a`, `\'`, `\0`, `\ `, `\` + "\t", `\` + "\xc3\xa9", `\` + "\x00", `\\\`, `\\\\`,
	"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
	"\xe2\x82", "\xe2", "\xf0\x9f\x98", "\x80", "\xbf", "\xfe", "\xff", "\xc3\xa9", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xef\xbb\xbf", "\xc2\xa0", "\xc2\x85", "\xf0\x9f\x98\x80",
	"\x7f", "\x00", "\x01", "\x1f", "\t", "\n", "\r", " ", "~",
}

// strictEdgeNumbers are number literals, valid and not.
var strictEdgeNumbers = []string{
	`0`, `-0`, `00`, `-00`, `01`, `-01`, `0.0`, `-0.0`, `0.`, `.0`, `-.0`, `1.`, `1.e5`, `1.0e`, `1e5`, `1E5`, `1e+5`, `1e-5`, `1E+05`, `1E-05`, `0e0`, `0E-0`, `-0e+0`,
	`1e`, `1e+`, `1e-`, `1E`, `1ee5`, `1e5e5`, `1e5.0`, `1.5.5`, `1..5`, `1e+-5`, `1e++5`, `+1`, `-`, `--1`, `- 1`, `-a`, `1-`, `1+`, `0x1F`, `0X1F`, `0b1`, `0o7`, `1_000`,
	`1e999999999999`, `-1e-999999999`, `1e308`, `1e309`, `4.9e-324`, `2e-324`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775809`, `18446744073709551616`,
	`1` + strings.Repeat("0", 1000), `0.` + strings.Repeat("1", 1000), `1e` + strings.Repeat("9", 1000), `-` + strings.Repeat("9", 400) + `.` + strings.Repeat("9", 400) + `E-` + strings.Repeat("9", 40),
	`Infinity`, `-Infinity`, `NaN`, `inf`, "\xd9\xa1", `１`, `1 2`, `1,2`, `1.5e3.`, `-0.`, `0.e1`,
}

// strictEdgeLiterals are literals and their truncations and misspellings.
var strictEdgeLiterals = []string{
	`true`, `false`, `null`, `t`, `tr`, `tru`, `f`, `fa`, `fal`, `fals`, `n`, `nu`, `nul`, `truee`, `true1`, `truex`, `falsee`, `nulll`, `nullx`,
	`True`, `TRUE`, `False`, `NULL`, `Null`, `nil`, `none`, `undefined`, `tRue`, `nUll`, `fAlse`, `t rue`, `tru e`, "tru\x00", "true\x00",
}

// strictEdgeSpaces are JSON and non-JSON white space.
var strictEdgeSpaces = []string{" ", "\t", "\n", "\r", "\r\n", " \t\n\r", "\v", "\f", "\x00", "\xc2\xa0", "\xef\xbb\xbf", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xc2\x85", "\xe3\x80\x80", "\x1c", "/**/", "//\n", "#\n"}

// strictEdgeKeys are object keys whose folding or unquoting is an edge:
// each pair in strictEdgeKeyPairs is one object with two keys.
var strictEdgeKeyPairs = [][2]string{
	{"", ""}, {"", " "}, {"a", "a"}, {"a", "A"}, {"id", "ID"}, {"id", "Id"}, {"id", "iD"}, {"id", `\u0069d`}, {"id", `\u0049D`}, {`\u0069d`, `\u0069d`}, {"id", `i\u0064`},
	{"k", "K"}, {"k", "\u212a"}, {"K", "\u212a"}, {"k", `\u212a`}, {"k", `\u212A`}, {"\u212a", "\u212a"}, {"key", "\u212aey"}, {"KEY", "\u212aey"},
	{"s", "S"}, {"s", "\u017f"}, {"S", "\u017f"}, {"status", "\u017ftatus"}, {"STATUS", `\u017ftatus`}, {"amountInCents", "amountInCent\u017f"},
	{"i", "\u0131"}, {"I", "\u0131"}, {"i", "\u0130"}, {"I", "\u0130"}, {"\u0131", "\u0130"}, {"\u0131d", "id"}, {"\u0130D", "id"},
	{"\u03c3", "\u03c2"}, {"\u03c3", "\u03a3"}, {"\u03c2", "\u03a3"}, {"\u00b5", "\u03bc"}, {"\u00b5", "\u039c"}, {"\u00df", "\u1e9e"}, {"ss", "\u00df"},
	{"\u01c4", "\u01c5"}, {"\u01c5", "\u01c6"}, {"\u00c5", "\u212b"}, {"\u00e5", "\u212b"}, {"\u03a9", "\u2126"}, {"\u03c9", "\u2126"}, {"\u1e9b", "\u1e61"}, {"\u1e9b", "S"},
	{"\u0345", "\u03b9"}, {"\u0345", "\u1fbe"}, {"\u03b9", "\u0399"}, {"\u03b8", "\u03d1"}, {"\u03f4", "\u03b8"},
	{"e\u0301", "\u00e9"}, {"\u00e9", "\u00c9"}, {"\u00e9", `\u00C9`},
	{"\xff", "\xfe"}, {"\xff", "\ufffd"}, {"\xff", `\ufffd`}, {`\ud800`, `\udc00`}, {`\ud800`, "\xff"}, {"\xc0\xaf", "\xe0\x80\xaf"}, {"a\xffb", "a\xfeb"}, {"a\xffb", "A\xfeB"},
	{`\u0000`, `\u0000`}, {`\u0000`, ""}, {"\x7f", `\u007f`}, {"\u2028", `\u2028`}, {"a", `a\u0000`},
}

// strictEdgeBodies builds the edge-case bodies.
func strictEdgeBodies() []string {
	var out []string
	add := func(s ...string) { out = append(out, s...) }
	for c := 0; c < 256; c++ {
		s := string([]byte{byte(c)})
		add(`{"a":"`+s+`"}`, `{"`+s+`":1}`, `{"a":"x`+s+`y\n"}`, `{"a":"\`+s+`"}`, `{"a":"\`+s, `{"a":`+s+`}`, `[`+s+`]`, s, `{"a":1}`+s, `{"a":1} `+s, `{`+s+`}`,
			`{"a"`+s+`:1}`, `{"a":1`+s+`}`, `[1`+s+`]`, `{"a":[`+s)
	}
	for _, e := range strictEdgeEscapes {
		add(`{"a":"`+e+`"}`, `{"a":"x`+e+`y"}`, `{"a":"`+e+`\n"}`, `{"`+e+`":1}`, `{"`+e+`":1,"`+e+`":2}`, `["`+e+`","`+e+`"]`, `"`+e+`"`, `{"a":"`+e, `{"a":"`+e+`\`,
			`{"a":"`+strings.Repeat(e, 100)+`"}`)
	}
	for _, n := range strictEdgeNumbers {
		add(n, ` `+n+` `, `[`+n+`]`, `[`+n+`,`+n+`]`, `{"a":`+n+`}`, `{"a":`+n+`,"b":1}`, `{"a":`+n, `[`+n, `{"a":[`+n+`]}`, `{"a":`+n+`,"A":1}`)
	}
	for _, l := range strictEdgeLiterals {
		add(l, `[`+l+`]`, `[`+l+`,1]`, `{"a":`+l+`}`, `{"a":`+l+`,"A":1}`, `{"a":`+l, `[`+l)
	}
	for _, tmpl := range []string{`{"a":[1,"x",true,null,{"b":-1.5e3}]}`, `[{}, [], "", 0]`, `"s"`, `1`} {
		for i := 0; i <= len(tmpl); i++ {
			for _, w := range strictEdgeSpaces {
				add(tmpl[:i] + w + tmpl[i:])
			}
		}
	}
	// Nesting at and around maxEventDepth, in arrays, objects and both,
	// with each kind of innermost value, and malformed closings.
	for _, d := range []int{maxEventDepth - 2, maxEventDepth - 1, maxEventDepth, maxEventDepth + 1, maxEventDepth + 2, 200} {
		for _, leaf := range []string{`1`, `{}`, `[]`, `""`, `{"a":1}`, `[1]`, `{"a":1,"A":2}`, ``} {
			arr := strings.Repeat(`[`, d) + leaf + strings.Repeat(`]`, d)
			obj := strings.Repeat(`{"a":`, d) + leaf + strings.Repeat(`}`, d)
			var mixed, closeMixed strings.Builder
			for i := range d {
				if i%2 == 0 {
					mixed.WriteString(`{"a":`)
				} else {
					mixed.WriteString(`[0,`)
				}
			}
			for i := d - 1; i >= 0; i-- {
				if i%2 == 0 {
					closeMixed.WriteString(`}`)
				} else {
					closeMixed.WriteString(`]`)
				}
			}
			mix := mixed.String() + leaf + closeMixed.String()
			add(arr, obj, mix, `[1,`+arr+`]`, `{"x":1,"y":`+obj+`}`, `{"a":`+mix+`,"A":1}`, `{"A":1,"a":`+mix+`}`, arr[:len(arr)-1], obj[:len(obj)-1],
				strings.Repeat(`[`, d)+leaf+strings.Repeat(`}`, d), strings.Repeat(`{"a":`, d)+leaf+strings.Repeat(`]`, d), arr+arr, `[`+arr+`,`+obj+`]`)
		}
	}
	// Key pairs, alone, nested, and among more than smallObject keys.
	for _, kp := range strictEdgeKeyPairs {
		a, b := kp[0], kp[1]
		add(`{"`+a+`":1,"`+b+`":2}`, `{"x":{"`+a+`":1,"`+b+`":2}}`, `[{"`+a+`":1},{"`+b+`":2}]`, `{"`+a+`":{"`+b+`":2}}`, `{"`+a+`":1}`, `{"`+b+`":1}`)
		for _, n := range []int{0, 1, smallObject - 2, smallObject - 1, smallObject, smallObject + 1, smallObject + 2, 3 * smallObject} {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = "k" + strconv.Itoa(i)
			}
			for _, at := range []int{0, n / 2, n} {
				for _, at2 := range []int{at, n} {
					ks := append(append(append([]string{}, keys[:at]...), a), keys[at:]...)
					ks = append(ks[:at2+1], append([]string{b}, ks[at2+1:]...)...)
					var sb strings.Builder
					sb.WriteString("{")
					for i, k := range ks {
						if i > 0 {
							sb.WriteString(",")
						}
						sb.WriteString(`"` + k + `":` + strconv.Itoa(i))
					}
					sb.WriteString("}")
					add(sb.String())
				}
			}
		}
	}
	// A duplicate (exact, case variant, Kelvin sign, escaped) of key j
	// placed after key i, for every i, j in objects of up to 40 keys: both
	// sides of the switch from the linear scan to the map.
	for n := 1; n <= 40; n++ {
		for j := 0; j < n; j++ {
			for _, variant := range []func(string) string{
				func(k string) string { return k },
				func(k string) string { return strings.ToUpper(k) },
				func(k string) string { return strings.ReplaceAll(k, "k", "\u212a") },
				func(k string) string { return strings.ReplaceAll(k, "k", `\u006b`) },
			} {
				for _, i := range []int{j, j + 1, smallObject - 1, smallObject, smallObject + 1, n - 1} {
					if i < j || i >= n {
						continue
					}
					var sb strings.Builder
					sb.WriteString("{")
					for x := range n {
						if x > 0 {
							sb.WriteString(",")
						}
						fmt.Fprintf(&sb, `"k%d":%d`, x, x)
						if x == i {
							fmt.Fprintf(&sb, `,"%s":"dup"`, variant("k"+strconv.Itoa(j)))
						}
					}
					sb.WriteString("}")
					add(sb.String())
				}
			}
		}
	}
	// Many distinct keys that must not collide: past smallObject, with
	// one fold class each.
	var distinct strings.Builder
	distinct.WriteString("{")
	for i := range 300 {
		if i > 0 {
			distinct.WriteString(",")
		}
		fmt.Fprintf(&distinct, `"%c%d":1`, rune('a'+i%26), i)
	}
	add(distinct.String() + "}")
	// Very long strings, plain and not.
	long := strings.Repeat("a", 1<<20)
	add(`{"a":"`+long+`"}`, `{"a":"`+long+`\n"}`, `{"a":"\n`+long+`"}`, `{"a":"`+long+"\xff"+`"}`, `{"a":"`+long+"\x01"+`"}`, `{"a":"`+long, `{"`+long+`":1,"`+strings.ToUpper(long)+`":2}`,
		`{"a":"`+strings.Repeat(`\u00e9`, 1<<16)+`"}`, `{"a":"`+strings.Repeat(`\\`, 1<<16)+`"}`, `{"a":"`+strings.Repeat(`\\`, 1<<16)+`\"}`, `{"a":"`+strings.Repeat("\xe2\x80\xa8", 1<<16)+`"}`)
	// Trailing data of every kind.
	for _, tail := range []string{"", " ", "\n", "{}", "[]", "1", "-", "\"", "\"x\"", "]", "}", ",", ":", "null", "t", "\x00", "\xef\xbb\xbf", "\xc2\xa0", "\v", "\f", "//", "/*x*/", " {}", "\n\n1", "\xff", "{", "["} {
		add(`{}`+tail, `{"a":1}`+tail, `[]`+tail, `1`+tail, `"s"`+tail, `true`+tail, `null`+tail, `-0`+tail, `1e5`+tail)
	}
	// Every prefix of Wompi's example and of an escape-rich body.
	escapey := `{"event":"transaction.updated","data":{"transaction":{"\u0069d":"a\u00e9\ud83d\ude00\n","status":"FAIL\u0045D","amountInCents":7.5E+6,"x":[true,false,null,-0.0e-0,{}]}},"signature":{"properties":["transaction.id"],"checksum":""},"timestamp":1}`
	for _, full := range []string{webhookVector, escapey} {
		for i := 0; i <= len(full); i++ {
			add(full[:i], full[:i]+`}`, full[:i]+`"}`, full[:i]+`]}`)
		}
	}
	return out
}

// TestDecodeStrictEdges holds decodeStrict to the Decoder.Token
// oracle on strictEdgeBodies.
func TestDecodeStrictEdges(t *testing.T) {
	bodies := strictEdgeBodies()
	for _, body := range bodies {
		checkStrict(t, []byte(body))
	}
	t.Logf("%d bodies", len(bodies))
}

// TestFoldKeyFastAll holds foldKeyFast to foldKey on every ASCII
// string of up to two bytes, every single rune, every rune inside ASCII
// context (so the ASCII scan falls through to foldKey mid-string), and
// invalid UTF-8.
func TestFoldKeyFastAll(t *testing.T) {
	check := func(k string) {
		if got, want := foldKeyFast(k), foldKey(k); got != want {
			t.Fatalf("%q folds to %q, foldKey says %q", k, got, want)
		}
	}
	check("")
	for a := range 128 {
		check(string(rune(a)))
		for b := range 128 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		s := string(r)
		check(s)
		if r >= 0x80 && r < 0x2200 || r >= 0xa640 && r < 0xa800 || r >= 0x10400 && r < 0x10500 || r >= 0x1e900 && r < 0x1e950 {
			check("ab" + s)
			check(s + "Zz")
			check("id" + s + "status")
		}
	}
	for b := 0x80; b < 0x100; b++ {
		check(string([]byte{byte(b)}))
		check("kS" + string([]byte{byte(b)}) + "sk")
		check(string([]byte{byte(b)}) + "\u212a")
	}
	for _, k := range []string{"amountInCents", "AMOUNTINCENTS", "amountInCent\u017f", "\u212aelvin", "\u017ftatus", "\u0131d", "\u0130D", "payout\u0130d", "\xc0\xafk", "k\xed\xa0\x80"} {
		check(k)
	}
}

// TestExactFieldsFoldedAway: decodeRest (now on foldKeyFast and a
// precomputed exactFolded) leaves out every key that encoding/json would
// match to an exact field, ASCII or not, and keeps every other one.
func TestExactFieldsFoldedAway(t *testing.T) {
	for i, k := range exactFields {
		if exactFolded[i] != foldKey(k) {
			t.Fatalf("exactFolded[%d] = %q, foldKey(%q) = %q", i, exactFolded[i], k, foldKey(k))
		}
	}
	type probe struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		AmountInCents int64  `json:"amountInCents"`
		PayoutID      string `json:"payoutId"`
		Reference     string `json:"reference"`
		Currency      string `json:"currency"`
	}
	for _, k := range []string{"ID", "Id", "STATUS", "\u017ftatus", "\u017fTATU\u017f", "amountincents", "AMOUNTINCENT\u017f", "PAYOUTID", "payoutid", "REFERENCE", "currency", "CURRENCY", "\u0131d", "\u0130d"} {
		v := any("x")
		if strings.Contains(strings.ToLower(k), "amount") {
			v = json.Number("5")
		}
		var p probe
		if err := decodeRest(map[string]any{k: v}, &p); err != nil {
			t.Fatalf("%q: %v", k, err)
		}
		// What encoding/json alone would have set from that key.
		var direct probe
		b, _ := json.Marshal(map[string]any{k: v})
		_ = json.Unmarshal(b, &direct)
		reachesExact := direct.ID != "" || direct.Status != "" || direct.AmountInCents != 0 || direct.PayoutID != "" || direct.Reference != ""
		gotExact := p.ID != "" || p.Status != "" || p.AmountInCents != 0 || p.PayoutID != "" || p.Reference != ""
		if gotExact {
			t.Fatalf("%q reached an exact field through decodeRest: %+v", k, p)
		}
		if !reachesExact && direct != p {
			t.Fatalf("%q: decodeRest %+v, encoding/json %+v", k, p, direct)
		}
	}
}

// strictEdgeSigned is a transaction.updated body whose data object is
// written by hand (escapes, key spellings), signed over props with the
// values the checksum would read.
func strictEdgeSigned(t *testing.T, data string, props []string) (string, string) {
	t.Helper()
	sum, err := EventChecksum([]byte(data), props, 1747673128600, vectorSecret)
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	list, _ := json.Marshal(props)
	return `{"event":"transaction.updated","data":` + data + `,"signature":{"properties":` + string(list) + `,"checksum":"` + sum + `"},"timestamp":1747673128600}`, sum
}

// TestParseEventDecodesTheSignedTree: signed bodies whose keys and
// values are spelled with escapes, exponents and non-ASCII fold variants
// either decode to exactly the values the checksum read, or are refused
// (a body that is not UTF-8 among them, whatever its checksum);
// a fold variant beside the signed key (ASCII or not, in the entity or
// above it) is always refused.
func TestParseEventDecodesTheSignedTree(t *testing.T) {
	three := []string{"transaction.id", "transaction.status", "transaction.amountInCents"}
	for _, tc := range []struct {
		name, data string
		wantErr    error // nil: accepted, and decoded as signed
	}{
		{"escaped keys and values", `{"transaction":{"\u0069d":"tx\u002da","\u0073tatus":"FAIL\u0045D","amountIn\u0043ents":7500000,"payout\u0049d":"p\u00e9"}}`, nil},
		{"exponent amount", `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":7.5E+6}}`, nil},
		{"amount with fraction zeros", `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":7500000.000}}`, nil},
		{"invalid UTF-8 id", "{\"transaction\":{\"id\":\"tx\xff\",\"status\":\"FAILED\",\"amountInCents\":1}}", errNotUTF8},
		{"long-s status beside status", `{"transaction":{"id":"tx-a","status":"FAILED","` + "\u017f" + `tatus":"APPROVED","amountInCents":1}}`, ErrAmbiguousEvent},
		{"escaped long-s status beside status", `{"transaction":{"id":"tx-a","\u017ftatus":"APPROVED","status":"FAILED","amountInCents":1}}`, ErrAmbiguousEvent},
		{"long-s amount beside amount", `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":1,"amountInCent` + "\u017f" + `":2}}`, ErrAmbiguousEvent},
		{"Kelvin key beside key, past smallObject", `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":1,` + strictEdgeFiller(20) + `,"key":1,"` + "\u212a" + `EY":2}}`, ErrAmbiguousEvent},
		{"case-variant entity", `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":1},"TRANSACTION":{"id":"tx-b","status":"APPROVED","amountInCents":1}}`, ErrAmbiguousEvent},
		{"lone long-s status", `{"transaction":{"id":"tx-a","` + "\u017f" + `tatus":"APPROVED","amountInCents":1}}`, ErrUnsignedField},
		{"lone ID", `{"transaction":{"ID":"tx-a","status":"FAILED","amountInCents":1}}`, ErrUnsignedField},
		{"lone escaped Kelvin-less ID", `{"transaction":{"\u0049D":"tx-a","status":"FAILED","amountInCents":1}}`, ErrUnsignedField},
		{"dotted key is not a path", `{"transaction.id":"tx-b","transaction":{"id":"tx-a","status":"FAILED","amountInCents":1}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An ambiguous body is signed as its genuine reading (the
			// first of each pair of keys) would be.
			signed := tc.data
			if errors.Is(tc.wantErr, ErrAmbiguousEvent) || tc.wantErr == errNotUTF8 {
				signed = `{"transaction":{"id":"tx-a","status":"FAILED","amountInCents":1}}`
			}
			_, sum := strictEdgeSigned(t, signed, three)
			body, _ := strictEdgeSigned(t, signed, three)
			body = strings.Replace(body, signed, tc.data, 1)
			ev, err := ParseEvent([]byte(body), sum, vectorSecret)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || ev != nil {
					t.Fatalf("got %+v %v, want %v", ev, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			root, _ := decodeStrict([]byte(tc.data))
			data := root.(map[string]any)
			for p, got := range map[string]string{"transaction.id": ev.Transaction.ID, "transaction.status": string(ev.Transaction.Status),
				"transaction.amountInCents": strconv.FormatInt(ev.Transaction.AmountInCents, 10)} {
				if want, _ := render(lookup(data, p)); got != want {
					t.Fatalf("%s decoded %q, signed %q", p, got, want)
				}
			}
			if pid, _ := render(lookup(data, "transaction.payoutId")); ev.Transaction.PayoutID != pid {
				t.Fatalf("payoutId decoded %q, body %q", ev.Transaction.PayoutID, pid)
			}
		})
	}
}

func strictEdgeFiller(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"f%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

// strictEdgeShapes are bodies of about size bytes, each of one shape an
// attacker could send unsigned to the webhook (the tracker reads at most
// MaxBodyBytes, 1 MiB by default, and requires json.Valid).
func strictEdgeShapes(size int) map[string][]byte {
	fill := func(open, item, sep, close string) []byte {
		n := (size - len(open) - len(close)) / (len(item) + len(sep))
		var b strings.Builder
		b.Grow(size)
		b.WriteString(open)
		for i := range n {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(item)
		}
		b.WriteString(close)
		return []byte(b.String())
	}
	keys := func(format string) []byte {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; b.Len() < size-32; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, format, i)
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	long := func(unit string) []byte {
		return []byte(`{"a":"` + strings.Repeat(unit, (size-10)/len(unit)) + `"}`)
	}
	deep := strings.Repeat("[", maxEventDepth-1) + strings.Repeat("]", maxEventDepth-1)
	sixteen := func() []byte {
		// Objects of smallObject keys that share a long prefix: the
		// linear scan's worst case.
		prefix := strings.Repeat("p", 200)
		var obj strings.Builder
		obj.WriteString("{")
		for i := range smallObject {
			if i > 0 {
				obj.WriteString(",")
			}
			fmt.Fprintf(&obj, `"%s%02d":0`, prefix, i)
		}
		obj.WriteString("}")
		return fill("[", obj.String(), ",", "]")
	}
	return map[string][]byte{
		"keys ascii lower":   keys(`"k%d":0`),
		"keys ascii upper":   keys(`"K%d":0`),
		"keys non-ascii":     keys(`"\u00e9%d":0`),
		"keys escaped":       keys(`"\u006b%d":0`),
		"empty objects":      fill("[", "{}", ",", "]"),
		"one-key objects":    fill("[", `{"a":0}`, ",", "]"),
		"empty arrays":       fill("[", "[]", ",", "]"),
		"zeros":              fill("[", "0", ",", "]"),
		"escaped strings":    fill("[", `"\n"`, ",", "]"),
		"plain strings":      fill("[", `""`, ",", "]"),
		"long escapes":       long(`\n`),
		"long \\u escapes":   long(`\u00e9`),
		"long surrogates":    long(`\ud83d\ude00`),
		"long plain":         long("a"),
		"long non-ascii":     long("\u00e9"),
		"long number":        []byte(`{"a":` + strings.Repeat("9", size-8) + `}`),
		"deep arrays":        fill("[", deep, ",", "]"),
		"16-key long prefix": sixteen(),
	}
}

// BenchmarkDecodeStrictShapes: decodeStrict on each 1 MiB shape. The
// shapes of many small values are refused at maxEventValues: what they
// measure is how soon.
func BenchmarkDecodeStrictShapes(b *testing.B) {
	for name, body := range strictEdgeShapes(1 << 20) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeStrict(body); err != nil && err != errTooManyValues {
					b.Fatal(err)
				}
			}
		})
	}
}

// strictKeyTable are key spellings FuzzDecodeStrictKeys draws from: several
// members of the same fold classes, escaped and raw.
var strictKeyTable = []string{
	"k", "K", "\u212a", `\u212a`, `\u006b`, `\u004B`, "s", "S", "\u017f", `\u017F`, "ss", "\u00df", "\u1e9e",
	"\u03c3", "\u03c2", "\u03a3", `\u03C2`, "i", "I", "\u0131", "\u0130", "id", "ID", "iD", `\u0069d`,
	"", `\u0000`, "\xff", "\xfe", `\ufffd`, "\ufffd", `\ud800`, "\u00b5", "\u03bc", "\u039c", "\u01c4", "\u01c5", "\u01c6",
	"a", "b", "c", "d", "e", "f", "g", "h", "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9",
	"amountInCents", "AMOUNTINCENTS", "amountInCent\u017f", "status", "\u017ftatus", "STATUS",
}

// FuzzDecodeStrictKeys: objects of up to 64 keys drawn from strictKeyTable
// (one byte a key; a byte past the table opens a nested object) are read
// as the Decoder.Token parser reads them. It reaches duplicates on both
// sides of the switch from the linear scan to the map far more often than
// byte-level fuzzing does.
func FuzzDecodeStrictKeys(f *testing.F) {
	f.Add([]byte{0, 1})
	f.Add([]byte{0, 2})
	f.Add([]byte{40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 2})
	f.Add([]byte{40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 200, 7, 8})
	f.Fuzz(func(t *testing.T, sel []byte) {
		if len(sel) > 64 {
			sel = sel[:64]
		}
		var b strings.Builder
		b.WriteString("{")
		open := 1
		first := true
		for i, c := range sel {
			if !first {
				b.WriteString(",")
			}
			first = false
			if int(c) >= len(strictKeyTable) {
				fmt.Fprintf(&b, `"n%d":{`, i)
				open++
				first = true
				continue
			}
			fmt.Fprintf(&b, `"%s":%d`, strictKeyTable[c], i)
		}
		b.WriteString(strings.Repeat("}", open))
		checkStrict(t, []byte(b.String()))
	})
}

// TestTimestampRecutRefused: the checksum concatenates the signed values
// and the timestamp with no separator, so Wompi's genuine example verifies
// as well re-cut into another amount and a shorter timestamp, or into an
// extra signed value "17" and a timestamp of 1971 (found by a review). A
// timestamp must be thirteen digits: both re-cuts are refused, the genuine
// event is not.
func TestTimestampRecutRefused(t *testing.T) {
	const secret = "prod_events_7b193c8afd7b47949f90d443cb1e1742"
	body := func(tx, props string, ts string) []byte {
		return []byte(`{"event":"transaction.updated","data":{"transaction":{` + tx + `}},"signature":{"properties":[` + props +
			`],"checksum":"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},"timestamp":` + ts + `}`)
	}
	const id = `"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","status":"FAILED"`
	const props = `"transaction.id","transaction.status","transaction.amountInCents"`
	if ev, err := ParseEvent(body(id+`,"amountInCents":7500000`, props, "1747673128600"), "", secret); err != nil || ev.Transaction.AmountInCents != 7500000 {
		t.Fatalf("the genuine example: %v", err)
	}
	for name, b := range map[string][]byte{
		"amount 75000001, timestamp of 12 digits": body(id+`,"amountInCents":75000001`, props, "747673128600"),
		"a signed 17, timestamp of 1971":          body(id+`,"amountInCents":7500000,"x":"17"`, props+`,"transaction.x"`, "47673128600"),
	} {
		// Each re-cut signs the genuine string.
		var raw map[string]any
		root, err := decodeStrict(b)
		if err != nil {
			t.Fatal(err)
		}
		raw = root.(map[string]any)
		sig := raw["signature"].(map[string]any)
		var ps []string
		for _, p := range sig["properties"].([]any) {
			ps = append(ps, p.(string))
		}
		sum, err := checksumOf(raw["data"].(map[string]any), ps, renderNumber(raw["timestamp"].(json.Number).String()), secret)
		if err != nil || sum != sig["checksum"] {
			t.Fatalf("%s: not the genuine checksum (%v)", name, err)
		}
		if ev, err := ParseEvent(b, "", secret); !errors.Is(err, ErrMalformedEvent) {
			t.Fatalf("%s: accepted (%+v, %v)", name, ev, err)
		}
	}
}
