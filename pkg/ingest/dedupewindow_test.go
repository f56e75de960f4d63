package ingest

import (
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/config"
)

// A claim is written when its record is polled, as early as its window's
// start; the window's transaction commits as late as the window's end
// (BATCH_MAX_WINDOW) plus the transaction timeout (BATCH_MAX_WINDOW + 1m:
// the Flush and End of runWindow share a context of that length, and the
// brokers time the transaction from its first produce, which for a window
// of valid requests is the batch at the window's end). A DEDUPE_WINDOW
// between BATCH_MAX_WINDOW + 1m and 2 x BATCH_MAX_WINDOW + 1m lets a claim
// expire while its window is still open: a copy read meanwhile claims the
// requestId too, and both are batched. Refused at start.
func TestDedupeWindowOutlivesTheWindowAndItsTransaction(t *testing.T) {
	host := func() (string, error) { return "h", nil }
	for _, tc := range []struct {
		window, dedupe string
		ok             bool
	}{
		{"", "3m", false}, // the default window 2m: its transaction may commit 5m after a claim
		{"", "4m59s", false},
		{"", "5m", true},
		{"10m", "20m59s", false},
		{"10m", "21m", true},
	} {
		env := map[string]string{"DEDUPE_WINDOW": tc.dedupe}
		if tc.window != "" {
			env["BATCH_MAX_WINDOW"] = tc.window
		}
		_, err := parse(t, env, host)
		var ce *config.Error
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ce) || ce.Env != "DEDUPE_WINDOW")) {
			t.Errorf("BATCH_MAX_WINDOW=%q DEDUPE_WINDOW=%q: err = %v, want ok=%v", tc.window, tc.dedupe, err, tc.ok)
		}
	}
}
