package track

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// rebuildTakes decides, batch by batch, what the rebuild's listing without
// a status filter puts back on the schedule. The integration tests of the
// rebuild (TestRebuildTakesScheduledBatchPaidWithinLookback) also pass
// through rebuildFromBatchTopic, which takes a batch the tracker emitted
// not final: they no longer see a clause of rebuildTakes go missing. A
// batch rebuildTakes leaves off that should be polled keeps its requests
// PENDING for good once its webhooks were lost with Redis; one taken that
// should not be is polled for nothing, or is not ours.
func TestRebuildTakes(t *testing.T) {
	const lookback = 48 * time.Hour
	now := t0.Add(30 * 24 * time.Hour)
	old, recent := now.Add(-4*24*time.Hour), now.Add(-time.Hour)
	for _, c := range []struct {
		name     string
		b        rail.Batch
		lookback time.Duration
		want     bool
	}{
		{"not final, created long ago", rail.Batch{Status: payout.BatchPending, CreatedAt: old}, lookback, true},
		{"final, created within the lookback", rail.Batch{Status: payout.BatchTotalPayment, CreatedAt: recent}, lookback, true},
		{"final, created and dispersed before the lookback", rail.Batch{Status: payout.BatchTotalPayment, CreatedAt: old, DispersionAt: old}, lookback, false},
		// Scheduled days ahead, paid at its dispersion: its payment's
		// webhooks are as recent as its dispersion.
		{"final, created long ago, dispersed within the lookback", rail.Batch{Status: payout.BatchTotalPayment, CreatedAt: old, DispersionAt: recent}, lookback, true},
		{"final, without a creation time", rail.Batch{Status: payout.BatchTotalPayment}, lookback, true},
		{"final, no lookback", rail.Batch{Status: payout.BatchTotalPayment, CreatedAt: recent}, -1, false},
		// Made in Wompi's dashboard: never ours.
		{"pending approval", rail.Batch{Status: payout.BatchPendingApproval, CreatedAt: recent}, lookback, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &Engine{cfg: Config{RebuildLookback: c.lookback}}
			if got := e.rebuildTakes(c.b, now); got != c.want {
				t.Errorf("rebuildTakes(%s, created %v, dispersed %v) = %v, want %v",
					c.b.Status, c.b.CreatedAt, c.b.DispersionAt, got, c.want)
			}
		})
	}
}
