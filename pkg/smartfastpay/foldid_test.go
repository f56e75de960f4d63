package smartfastpay

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A listed transaction_id that is not ours exactly may still be ours
// (rail.FoldID): case, spaces, and an all-digit id's leading zeros (lost
// when the listing answers it as a JSON number) ignored.
func TestFoldID(t *testing.T) {
	for in, want := range map[string]string{
		"000777": "777", " 777 ": "777", "0": "0", "000": "0", "Ab-01": "ab-01", "0a7": "0a7", "": "",
	} {
		if got := rail.FoldID(in); got != want {
			t.Errorf("rail.FoldID(%q) = %q, want %q", in, got, want)
		}
	}
	if err := unprovable("777", func(f string) bool { return f == rail.FoldID("000777") }); err == nil {
		t.Error("a listed 777 is taken for another request's payout, not ours (000777) read as a number")
	}
	if err := unprovable("778", func(f string) bool { return f == rail.FoldID("000777") }); err != nil {
		t.Errorf("another request's 778: %v", err)
	}
}
