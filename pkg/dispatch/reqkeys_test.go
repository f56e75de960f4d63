package dispatch

import (
	"slices"
	"testing"
)

// TestAppendReqKeysMatchesReqKey holds the dedupe's keys, carved from one
// string, to reqKey's, with and without a deployment prefix.
func TestAppendReqKeysMatchesReqKey(t *testing.T) {
	ids := []string{"req-1", "", "REQ-Mixed-2", "a-much-longer-request-id-0123456789-0123456789-0123456789"}
	for _, prefix := range []string{"", "tenant-a:"} {
		s := &store{prefix: prefix}
		want := []string{"x"}
		for _, id := range ids {
			want = append(want, s.reqKey(id))
		}
		if got := s.appendReqKeys([]string{"x"}, ids); !slices.Equal(got, want) {
			t.Fatalf("prefix %q: got %q, want %q", prefix, got, want)
		}
		if got := s.appendReqKeys(nil, nil); len(got) != 0 {
			t.Fatalf("prefix %q: no ids gave %q", prefix, got)
		}
	}
}
