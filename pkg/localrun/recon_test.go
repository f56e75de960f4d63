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

// The raw consume's rate counts only records timed after the first fetch,
// and is not reported when too few came after it.
func TestRawRate(t *testing.T) {
	if r := rawRate(900_000, 1_000_000, time.Second); r != 900_000 {
		t.Fatalf("rate %v, want 900000", r)
	}
	for _, c := range []struct {
		timed, want int
		took        time.Duration
	}{{5, 100_000, time.Microsecond}, {0, 100, time.Second}, {100, 100, 0}} {
		if r := rawRate(c.timed, c.want, c.took); r != 0 {
			t.Fatalf("rawRate(%d, %d, %v) = %v, want 0 (not measured)", c.timed, c.want, c.took, r)
		}
	}
}
