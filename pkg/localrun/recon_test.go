package localrun

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// In the load run (followed up to SUBMITTED), a request whose SUBMITTED the
// status gate left out because the tracker's PENDING came first has reached
// the provider: it counts as submitted, not as lost.
func TestLoadTallyCountsPendingWithoutSubmitted(t *testing.T) {
	m := NewMarketplace("tally", 1, Mix{}, time.Now)
	tl := NewTally(m, 2)
	tl.untilSubmitted = true
	batch, provider, wep := "b-1", "wep-77", "wepayout"
	for i := range 2 {
		tl.Published(i, KindWEpayout, 100, time.Now())
		tl.Observe(&payout.StatusChange{RequestID: m.RequestID(i), Status: payout.StatusBatched, BatchID: &batch})
	}
	tl.Observe(&payout.StatusChange{RequestID: m.RequestID(0), Status: payout.StatusPending, BatchID: &batch,
		TransactionID: &provider, Rail: &wep, Source: payout.SourcePoll})
	settled, submitted, _ := tl.Progress()
	if settled != 1 || submitted != 1 {
		t.Fatalf("settled %d, submitted %d; want the request with the tracker's PENDING counted, the other not", settled, submitted)
	}
}
