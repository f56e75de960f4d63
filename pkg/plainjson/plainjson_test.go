package plainjson

import (
	"encoding/json"
	"testing"
)

// FuzzValueMatchesEncodingJSON: a string Raw accepts decodes, with
// encoding/json, to Raw's bytes; a literal Number accepts is a number
// encoding/json reads with the same text.
func FuzzValueMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"Gómez"`, "\"\xff\"", "\"a\x01\"", `"<&>"`, `"\u00e9"`, `""`, `"`,
		`0`, `-0`, `01`, `1.5e-3`, `-`, `1.`, `.5`, `1e`, `12345678901234567890`, "\"\u2028\"", `{"a":[1,true,null,"x\u00e9\n"],"b":{}}`, `[1,]`, `{"a" 1}`, `"\u12g4"`,
		`999999999999999`, `-12`, `1.0`, `[[[[]]]]`, `tru`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Scanner{B: b}
		if got, ok := p.Raw(); ok && p.End() {
			var want string
			if err := json.Unmarshal(b, &want); err != nil || want != string(got) {
				t.Fatalf("Raw read %q from %q; encoding/json %q, %v", got, b, want, err)
			}
		}
		p = Scanner{B: b}
		if p.Skip() && p.End() && !json.Valid(b) {
			t.Fatalf("Skip read %q, which encoding/json refuses", b)
		}
		p = Scanner{B: b}
		if got, ok := p.Int(); ok && p.End() {
			var want int
			if err := json.Unmarshal(b, &want); err != nil || want != got {
				t.Fatalf("Int read %d from %q; encoding/json %d, %v", got, b, want, err)
			}
		}
		p = Scanner{B: b}
		if got, ok := p.Number(); ok && p.End() {
			var want json.Number
			if err := json.Unmarshal(b, &want); err != nil || want.String() != string(got) {
				t.Fatalf("Number read %q from %q; encoding/json %q, %v", got, b, want, err)
			}
		}
	})
}

// FuzzAppendStringMatchesMarshal: AppendString writes json.Marshal's bytes
// for any string, and keeps what was already in the buffer.
func FuzzAppendStringMatchesMarshal(f *testing.F) {
	for _, s := range []string{"", "plain", "Ana Pérez", "a\"b\\c", "<&>", "\x7f\x01", "\xff", "\xe2\x80", "\u2028\u2029", ">", "&", "\\", "\u2029",
		"日本\U0001F600", "\ufffd", "\xed\xa0\x80",
		"\b\f\n\r\t", "\x00\x1f\x0b", "a<b>c&d", "x\u2028y\xffz", "é\"ü\\", "/v2/x?a=1&page=2", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got := AppendString([]byte("x"), s)
		if string(got) != "x"+string(want) {
			t.Fatalf("AppendString(%q) = %s; json.Marshal %s", s, got[1:], want)
		}
	})
}

// BenchmarkAppendString quotes a listing link (its '&' escaped as \u0026),
// a name with accents, and, for comparison, the link through json.Marshal.
func BenchmarkAppendString(b *testing.B) {
	link := "/v2/payout/payments?external_id=req-7f3a9c1e-0001&page=1&per_page=100"
	buf := make([]byte, 0, 256)
	b.Run("link", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendString(buf[:0], link)
		}
	})
	b.Run("accented", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendString(buf[:0], "José Ñandú Pérez")
		}
	})
	b.Run("link-json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, _ := json.Marshal(link)
			buf = append(buf[:0], m...)
		}
	})
}
