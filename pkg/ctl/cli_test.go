package ctl

import (
	"slices"
	"testing"
)

// Flags may come before or after the positional arguments; a flag that
// takes no value followed by true or false takes that word, so that
// "--dry-run true" is a dry run of "dlq replay", not "dlq replay true".
func TestSplitTakesTrueOrFalseAfterAFlagWithoutValue(t *testing.T) {
	for _, c := range []struct {
		args       []string
		pos, flags []string
	}{
		{[]string{"dlq", "replay", "--dry-run", "true", "--offset", "1/2"},
			[]string{"dlq", "replay"}, []string{"--dry-run=true", "--offset", "1/2"}},
		{[]string{"--dry-run", "false", "dlq", "replay"},
			[]string{"dlq", "replay"}, []string{"--dry-run=false"}},
		{[]string{"dlq", "--help", "false"},
			[]string{"dlq", "false"}, []string{"--help"}},
		{[]string{"trace", "--reveal", "req-1"},
			[]string{"trace", "req-1"}, []string{"--reveal"}},
		{[]string{"trace", "--output", "json", "req-1", "--", "-x"},
			[]string{"trace", "req-1", "-x"}, []string{"--output", "json"}},
	} {
		pos, flags := split(c.args)
		if !slices.Equal(pos, c.pos) || !slices.Equal(flags, c.flags) {
			t.Errorf("split(%q) = %q, %q; want %q, %q", c.args, pos, flags, c.pos, c.flags)
		}
	}
}
