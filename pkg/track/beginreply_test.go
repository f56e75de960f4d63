package track

import (
	"slices"
	"testing"
)

// TestParseBeginMany holds the reading of beginManyScript's two-string
// answer: one outcome letter per key, the previous statuses joined with
// '|'. An answer of another shape is refused whole, so no key is read from
// a misaligned reply.
func TestParseBeginMany(t *testing.T) {
	outs, froms := make([]outcome, 4), make([]string, 4)
	if err := parseBeginMany([]string{"osub", "|SUBMITTED|PENDING|"}, outs, froms); err != nil {
		t.Fatal(err)
	}
	if want := []outcome{outcomeOK, outcomeStale, outcomeUnknown, outcomeBusy}; !slices.Equal(outs, want) {
		t.Errorf("outcomes %v, want %v", outs, want)
	}
	if want := []string{"", "SUBMITTED", "PENDING", ""}; !slices.Equal(froms, want) {
		t.Errorf("previous statuses %q, want %q", froms, want)
	}
	one, oneFrom := make([]outcome, 1), make([]string, 1)
	if err := parseBeginMany([]string{"o", ""}, one, oneFrom); err != nil || one[0] != outcomeOK || oneFrom[0] != "" {
		t.Errorf("one key: %v %q %v", one, oneFrom, err)
	}
	for _, bad := range [][]string{
		{"osu", "|SUBMITTED|PENDING|"},      // a letter short
		{"osubo", "|SUBMITTED|PENDING|"},    // a letter more
		{"osub", "|SUBMITTED|PENDING"},      // a status short
		{"osub", "|SUBMITTED|PENDING||"},    // a status more
		{"osux", "|SUBMITTED|PENDING|"},     // no such outcome
		{"osub"},                            // one string
		{"osub", "|SUBMITTED|PENDING|", ""}, // three
	} {
		if err := parseBeginMany(bad, outs, froms); err == nil {
			t.Errorf("%q: read, want refused", bad)
		}
	}
}
