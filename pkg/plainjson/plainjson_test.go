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
		`0`, `-0`, `01`, `1.5e-3`, `-`, `1.`, `.5`, `1e`, `12345678901234567890`, "\"\u2028\""} {
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
		if got, ok := p.Number(); ok && p.End() {
			var want json.Number
			if err := json.Unmarshal(b, &want); err != nil || want.String() != string(got) {
				t.Fatalf("Number read %q from %q; encoding/json %q, %v", got, b, want, err)
			}
		}
	})
}
