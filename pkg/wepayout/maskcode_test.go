package wepayout_test

import (
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// A cancellation's status_detail.code becomes the CANCELLED event's
// reasonCode: a code is kept as WEpayout wrote it, and anything else (a
// CPF quoted into it, a code past the status topic's max.message.bytes:
// that event would never be written, and the payee never get its final
// status) is masked and cut.
func TestCancellationCodeIsKeptMaskedOrBounded(t *testing.T) {
	for _, c := range []struct{ code, want string }{
		{"WE0001", "WE0001"},
		{"invalid_pix_key", "invalid_pix_key"},
		{"bank.timeout-2", "bank.timeout-2"},
	} {
		if st, reason, _ := wepayout.MapStatus(wepayout.StatusCancelled, &wepayout.StatusDetail{Code: c.code}); st != payout.StatusCancelled || reason != c.want {
			t.Errorf("code %q: %s %q, want CANCELLED %q", c.code, st, reason, c.want)
		}
	}
	for _, code := range []string{"pix_key_" + testCPF, "key " + testCPF, strings.Repeat("E", 2<<20)} {
		_, reason, _ := wepayout.MapStatus(wepayout.StatusCancelled, &wepayout.StatusDetail{Code: code})
		if strings.Contains(reason, testCPF) || len(reason) > 64 || reason == "" {
			t.Errorf("code of %d bytes: reason %.80q (%d bytes), want it masked and at most 64 bytes", len(code), reason, len(reason))
		}
	}
}
