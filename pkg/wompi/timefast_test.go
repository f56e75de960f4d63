package wompi

import (
	"testing"
	"time"
)

// The fast path reads exactly what the parser reads, wherever it answers.
func FuzzTimeFastPath(f *testing.F) {
	for _, s := range []string{
		`"2026-03-10T15:00:00.000Z"`, `"2026-12-31T23:59:59.999Z"`, `"2024-02-29T00:00:00.000Z"`,
		`"2026-02-29T00:00:00.000Z"`, `"2026-02-31T10:00:00.000Z"`, `"2026-13-01T10:00:00.000Z"`,
		`"2026-00-10T10:00:00.000Z"`, `"2026-03-00T10:00:00.000Z"`, `"2026-03-10T24:00:00.000Z"`,
		`"2026-03-10T23:60:00.000Z"`, `"2026-03-10T23:59:60.000Z"`, `"0000-01-01T00:00:00.000Z"`,
		`"2026-03-10T15:00:00.000z"`, `"2026-03-10t15:00:00.000Z"`, `"2026-03-10T15:00:00.00Z"`,
		`"2026-03-10T15:00:00.0000Z"`, `"2026-03-10 15:00:00.000Z"`, `"2026-03-10T15:00:00.000+00:00"`,
		`"2026-11-31T10:00:00.000Z"`, `"2026-04-31T10:00:00.000Z"`, `"2026-06-31T10:00:00.000Z"`,
		`"2026-09-31T10:00:00.000Z"`, `"2100-02-29T10:00:00.000Z"`, `"2000-02-29T10:00:00.000Z"`,
		`"+026-03-10T15:00:00.000Z"`, `"2026-03-10T15:00:00.-00Z"`, `"２026-03-10T15:00:00.000Z"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseUTCMillis(b)
		var slow Time
		if len(b) > 0 && b[0] == '"' {
			_ = slow.unmarshalString(b)
		}
		if ok && fast != slow.Time {
			t.Fatalf("%s: fast path %v, parser %v", b, fast, slow.Time)
		}
		var full Time
		if err := full.UnmarshalJSON(b); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		// The parser's fixed zones are new values at each call: the same
		// instant in the same zone is the same reading.
		fn, fo := full.Zone()
		sn, so := slow.Zone()
		if len(b) > 0 && b[0] == '"' && (!full.Equal(slow.Time) || fn != sn || fo != so) {
			t.Fatalf("%s: UnmarshalJSON %v, parser %v", b, full.Time, slow.Time)
		}
	})
}

// The form Wompi's answers use takes the fast path; a date out of range
// does not, and reads as the parser reads it (zero).
func TestTimeFastPathTakesWompisForm(t *testing.T) {
	if v, ok := parseUTCMillis([]byte(`"2026-03-10T15:04:05.123Z"`)); !ok || !v.Equal(time.Date(2026, 3, 10, 15, 4, 5, 123e6, time.UTC)) {
		t.Fatalf("Wompi's form: %v %v", v, ok)
	}
	for _, leap := range []string{`"2024-02-29T00:00:00.000Z"`, `"2000-02-29T00:00:00.000Z"`} {
		if _, ok := parseUTCMillis([]byte(leap)); !ok {
			t.Fatalf("%s, a leap day, left to the parser", leap)
		}
	}
	if _, ok := parseUTCMillis([]byte(`"2026-02-31T15:04:05.123Z"`)); ok {
		t.Fatal("31 February taken by the fast path")
	}
	var tm Time
	if err := tm.UnmarshalJSON([]byte(`"2026-02-31T15:04:05.123Z"`)); err != nil || !tm.IsZero() {
		t.Fatalf("31 February read as %v (%v), want zero", tm.Time, err)
	}
}

func BenchmarkTimeUnmarshal(b *testing.B) {
	v := []byte(`"2026-03-10T15:04:05.123Z"`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var t Time
		for b.Loop() {
			_ = t.UnmarshalJSON(v)
		}
	})
	b.Run("parser", func(b *testing.B) {
		b.ReportAllocs()
		var t Time
		for b.Loop() {
			_ = t.unmarshalString(v)
		}
	})
}
