package wompi

// What a webhook body can cost before its checksum is checked: the value
// cap (maxEventValues), the UTF-8 check and the unquoting, measured on the
// shapes that cost most.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// fillBody builds prefix + elem(0) + "," + elem(1) ... + suffix, up to
// about size bytes, stopping after max elements when max > 0.
func fillBody(size int, prefix string, elem func(i int) string, suffix string, max int) []byte {
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; max <= 0 || i < max; i++ {
		e := elem(i)
		if b.Len()+len(e)+len(suffix)+1 > size {
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(e)
	}
	b.WriteString(suffix)
	return []byte(b.String())
}

// What an unsigned body can make ParseEvent allocate before the checksum
// refuses it, for shapes TestParseEventManyValuesBounded does not cover,
// under the same bar (4x the body).
func TestParseEventUnsignedBodiesBounded(t *testing.T) {
	const mib = 1 << 20
	pad := func(n int, c string) string { return strings.Repeat(c, n) }
	ts := "1747673128600"
	// A well-formed, signed-looking event whose checksum is wrong, so the
	// whole pre-checksum path runs (decodeStrict, stringList, checksumOf).
	event := func(extra string) []byte {
		return []byte(`{"event":"transaction.updated","data":{"transaction":{"id":"x","status":"FAILED","amountInCents":1}` + extra + `},` +
			`"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"00"},"timestamp":` + ts + `}`)
	}
	cases := []struct {
		name string
		body []byte
	}{
		// Raw invalid UTF-8 is refused whole. Handed to encoding/json, each
		// bad byte became a three-byte U+FFFD in a buffer grown by
		// doubling, then copied: 10-13x the body.
		{"invalid UTF-8 string", []byte(`{"a":"` + pad(mib-16, "\xff") + `"}`)},
		{"invalid UTF-8 key (folded too)", []byte(`{"a` + pad(mib-16, "\xff") + `":0}`)},
		{"invalid UTF-8 string in an event", event(`,"note":"` + pad(mib-400, "\xff") + `"`)},
		{"invalid UTF-8, 4000 strings", fillBody(mib, `{"data":[`, func(int) string { return `"` + pad(250, "\xff") + `"` }, `]}`, 4000)},
		// Escapes: unquoted into one allocation (encoding/json's
		// Unmarshal took 4.9x on the 4,000 keys).
		{"escaped string", []byte(`{"a":"\n` + pad(mib-16, "x") + `"}`)},
		{"escaped key", []byte(`{"\n` + pad(mib-16, "x") + `":0}`)},
		{"escaped keys, 4000", fillBody(mib, `{"data":{`, func(i int) string { return `"\n` + strconv.Itoa(i) + pad(240, "k") + `":0` }, `}}`, 4000)},
		{"non-ASCII keys (foldKey), 4000", fillBody(mib, `{"data":{`, func(i int) string { return `"` + strconv.Itoa(i) + pad(120, "é") + `":0` }, `}}`, 4000)},
		// Numbers.
		{"one long number", []byte(`{"a":1` + pad(mib-16, "0") + `}`)},
		{"long fractional timestamp (renderNumber before the checksum)", []byte(strings.Replace(string(event("")), ts, "1."+pad(mib-400, "0")+"1", 1))},
		{"long exponent number signed", []byte(strings.Replace(string(event("")), `"amountInCents":1`, `"amountInCents":1`+pad(mib-400, "0")+`e-1000000`, 1))},
		// Count-bound shapes: 17-key objects (the seen map), nesting.
		{"17-key objects up to the cap", fillBody(mib, `{"data":[`, func(i int) string {
			var b strings.Builder
			b.WriteString("{")
			for k := range 17 {
				if k > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `"k%d":0`, k)
			}
			b.WriteString("}")
			return b.String()
		}, `]}`, 0)},
		{"depth-31 towers up to the cap", fillBody(mib, `{"data":[`, func(int) string {
			return strings.Repeat(`{"a":`, 30) + "0" + strings.Repeat("}", 30)
		}, `]}`, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The tracker's readBody lets it through (json.Valid does
			// not check UTF-8) to ParseEvent.
			if !json.Valid(tc.body) {
				t.Fatal("not valid JSON to encoding/json: the tracker would refuse it first")
			}
			var err error
			allocs := allocatedBytes(func() { _, err = ParseEvent(tc.body, strings.Repeat("0", 64), vectorSecret) })
			if err == nil {
				t.Fatal("accepted")
			}
			ratio := float64(allocs) / float64(len(tc.body))
			t.Logf("%d-byte body: %d bytes allocated (%.1fx), %.80v", len(tc.body), allocs, ratio, err)
			if limit := uint64(4 * len(tc.body)); allocs > limit {
				t.Errorf("a %d-byte body allocated %d bytes (%.1fx, limit 4x) before its checksum was checked", len(tc.body), allocs, ratio)
			}
		})
	}
}

// Small bodies that the value cap bounds only by count: the absolute
// allocation at 4096 values of the costliest kinds.
func TestParseEventSmallBodiesBounded(t *testing.T) {
	n := maxEventValues - 2
	cases := map[string][]byte{
		"escaped strings": fillBody(1<<20, `{"a":[`, func(int) string { return `"\n"` }, `]}`, n),
		"escaped keys":    fillBody(1<<20, `{"a":{`, func(i int) string { return `"\n` + strconv.Itoa(i) + `":0` }, `}}`, n),
		"1-key objects":   fillBody(1<<20, `{"a":[`, func(int) string { return `{"a":{"b":0}}` }, `]}`, n/3),
		"17-key objects": fillBody(1<<20, `{"a":[`, func(int) string {
			return `{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0,"l":0,"m":0,"n":0,"o":0,"p":0,"q":0}`
		}, `]}`, n/18),
		"1-element arrays": fillBody(1<<20, `{"a":[`, func(int) string { return `[[0]]` }, `]}`, n/3),
	}
	for name, body := range cases {
		var err error
		allocs := allocatedBytes(func() { _, err = ParseEvent(body, strings.Repeat("0", 64), vectorSecret) })
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		t.Logf("%-16s %7d-byte body: %8d bytes allocated (%.0fx), %.60v", name, len(body), allocs, float64(allocs)/float64(len(body)), err)
		if allocs > 4<<20 {
			t.Errorf("%s: %d bytes for a %d-byte body", name, allocs, len(body))
		}
	}
}

// countValues is how many values decodeStrict counted on body.
func countValues(body []byte) (int, error) {
	p := strictParser{b: body}
	p.space()
	_, err := p.value(0)
	return p.values, err
}

// The documented events hold far fewer than maxEventValues values, even
// with every documented field and long strings.
func TestGenuineEventsFarBelowValueCap(t *testing.T) {
	tx := map[string]any{"id": "04a6e53d-a244-4140-ab9e-48fa541f9fe5", "payoutId": "p", "amountInCents": 7500000, "status": "FAILED",
		"payee":         map[string]any{"name": strings.Repeat("n", 500), "document": "1", "bank": "b", "accountType": "AHORROS", "accountNumber": "123456", "email": "a@b.co"},
		"failureReason": map[string]any{"code": "C01", "message": strings.Repeat("m", 2000)}, "currency": "COP",
		"appliedAt": "2025-05-15T15:00:00.000Z", "createdAt": "2025-05-15T15:00:00.000Z"}
	po := map[string]any{"id": "p", "reference": "r", "amountInCents": 1, "paymentType": "PROVIDERS", "status": "TOTAL_PAYMENT",
		"totalTransactions": 5000, "currency": "COP", "dispersionDatetime": "x", "approvedAt": "2025-05-15T15:00:00.000Z", "createdAt": "2025-05-15T15:00:00.000Z"}
	for name, data := range map[string]any{"transaction.updated": map[string]any{"transaction": tx}, "payout.updated": map[string]any{"payout": po}} {
		entity := strings.TrimSuffix(name, ".updated")
		body, _, err := SignEvent(name, data, []string{entity + ".id", entity + ".status", entity + ".amountInCents"}, testNow, vectorSecret)
		if err != nil {
			t.Fatal(err)
		}
		n, err := countValues(body)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d values", name, n)
		if n > maxEventValues/32 {
			t.Errorf("%s: %d values, too close to the cap", name, n)
		}
		if _, err := ParseEvent(body, "", vectorSecret); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// capShapes are bodies of about n values with every kind of ending.
func capShapes(n int) map[string]string {
	zeros := func(k int) string { return strings.TrimSuffix(strings.Repeat("0,", k), ",") }
	keys := func(k int, from int) string {
		var b strings.Builder
		for i := range k {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":0`, from+i)
		}
		return b.String()
	}
	deepPrefix := strings.Repeat("[", maxEventDepth) // 32 values, depth 0..31
	deepSuffix := strings.Repeat("]", maxEventDepth)
	s := map[string]string{
		"array":                        `[` + zeros(n-1) + `]`,
		"object":                       `{` + keys(n-1, 0) + `}`,
		"object of [0]":                `{` + strings.ReplaceAll(keys((n-1)/2, 0), `:0`, `:[0]`) + `}`,
		"deep then flat":               deepPrefix + zeros(n-maxEventDepth) + deepSuffix,
		"empties":                      `[` + strings.TrimSuffix(strings.Repeat(`{},[],`, (n-1)/2), ",") + `]`,
		"trailing comma":               `[` + zeros(n-1) + `,]`,
		"leading comma":                `[,` + zeros(n-1) + `]`,
		"bad token after":              `[` + zeros(n-1) + `,x]`,
		"bad escape after":             `[` + zeros(n-1) + `,"\x"]`,
		"bad number after":             `[` + zeros(n-1) + `,01]`,
		"unterminated":                 `[` + zeros(n-1),
		"unterminated string after":    `[` + zeros(n-1) + `,"abc`,
		"extra close":                  `[` + zeros(n-1) + `]]`,
		"trailing value":               `[` + zeros(n-1) + `] 0`,
		"missing colon at end":         `{` + keys(n-1, 0) + `,"z"}`,
		"missing value at end":         `{` + keys(n-1, 0) + `,"z":}`,
		"dup key at end":               `{` + keys(n-1, 0) + `,"k0":0}`,
		"case dup key at end":          `{` + keys(n-1, 0) + `,"K0":0}`,
		"dup key at end, no value":     `{` + keys(n-1, 0) + `,"k0"}`,
		"dup key at end, object":       `{` + keys(n-1, 0) + `,"k0":{}}`,
		"dup key at end, bad":          `{` + keys(n-1, 0) + `,"k0":x}`,
		"dup key in an inner object":   `{"a":{` + keys(n-3, 0) + `},"b":{"k":0,"K":0}}`,
		"dup in a small object at end": `[` + zeros(n-2) + `,{"a":0,"A":0}]`,
		"depth error at end":           `[` + zeros(n-maxEventDepth-1) + `,` + deepPrefix + `0` + deepSuffix + `]`,
		"depth error at end, deeper":   `[` + zeros(n-maxEventDepth-2) + `,` + deepPrefix + `[0]` + deepSuffix + `]`,
		"escaped string at end":        `[` + zeros(n-2) + `,"\u00e9\n"]`,
		"invalid utf8 at end":          `[` + zeros(n-2) + ",\"\xff\"]",
		"empty key dup at end":         `{"":0,` + keys(n-3, 0) + `,"":1}`,
	}
	return s
}

// checkStrict and a finer comparison (does the too-many error come from
// both or neither) at and around the cap, for every shape.
func TestValueCapAgreesWithReference(t *testing.T) {
	tooMany := func(err error) bool { return err != nil && strings.Contains(err.Error(), "JSON values") }
	for n := maxEventValues - 3; n <= maxEventValues+3; n++ {
		for name, body := range capShapes(n) {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				checkStrict(t, []byte(body))
				_, err := decodeStrict([]byte(body))
				_, werr := decodeStrictTokens([]byte(body))
				if tooMany(err) != tooMany(werr) {
					// Not a disagreement checkStrict sees (both are
					// ErrMalformedEvent), but worth knowing.
					t.Logf("reasons differ: %v | reference %v", err, werr)
				}
			})
		}
	}
}

// FuzzDecodeStrictNearCap: arbitrary tails after a prefix that holds nearly
// maxEventValues values, as an array or as an object (so that a
// duplicate of an earlier key meets the cap).
func FuzzDecodeStrictNearCap(f *testing.F) {
	for _, tail := range []string{`0]`, `0,0,0,0,0,0,0,0,0,0,0,0]`, `"k1":0}`, `"K3":0,"x":[1,2,3,4,5,6,7,8,9,10]}`, `"z":{"a":1,"A":2}}`,
		`{}]`, `[[[[[[[[]]]]]]]]]`, `"\n",x]`, `1,2,3,4,5,6,7,8,9,"k2":0}`} {
		f.Add(uint8(0), uint8(10), []byte(tail))
		f.Add(uint8(1), uint8(10), []byte(tail))
	}
	f.Fuzz(func(t *testing.T, kind, back uint8, tail []byte) {
		if len(tail) > 256 {
			tail = tail[:256]
		}
		n := maxEventValues - int(back%32) - 1
		var b strings.Builder
		if kind%2 == 0 {
			b.WriteString("[")
			for i := range n {
				_ = i
				b.WriteString("0,")
			}
		} else {
			b.WriteString("{")
			for i := range n {
				fmt.Fprintf(&b, `"k%d":0,`, i)
			}
		}
		b.Write(tail)
		checkStrict(t, []byte(b.String()))
	})
}

// foldKeyFast on strings.Builder: identical to foldKey on long and mixed
// keys, one allocation for a key with a lower-case letter, none without.
func TestFoldKeyFastLongKeysAndAllocations(t *testing.T) {
	var all strings.Builder
	for c := range 128 {
		all.WriteByte(byte(c))
	}
	for _, k := range []string{all.String(), strings.Repeat("aZ_9", 5000), strings.Repeat("z", 1<<16), "a", "A", "id\x00", "\x7fa"} {
		if got, want := foldKeyFast(k), foldKey(k); got != want {
			t.Fatalf("%.40q folds to %.40q, foldKey says %.40q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = foldKeyFast("amountInCents") }); n != 1 {
		t.Errorf("lower-case key: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = foldKeyFast("AMOUNT_IN_CENTS") }); n != 0 {
		t.Errorf("upper-case key: %v allocations, want 0", n)
	}
}
