package dispatch

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A rail that keeps an all-digit requestId as a number lists it without
// its leading zeros (our 000777 as 777), and a recovery after a Redis loss
// indexes the form listed: the duplicate index's silence about 000777 then
// proves nothing, and a payee under it indexed "for the first time" must
// still be looked up (the lookup refuses to call the folded form absent),
// or a payout its earlier POST made is paid again.
func TestZeroLedRequestIDIsNeverProvenNew(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e := &Engine{cfg: Config{DedupeWindow: 720 * time.Hour, Now: func() time.Time { return now }}}
	b := &payout.Batch{CreatedAt: now, Transactions: []payout.Transaction{
		{RequestID: "000777", RequestedAt: now}, {RequestID: "777", RequestedAt: now}, {RequestID: "0a7", RequestedAt: now}, {RequestID: "0", RequestedAt: now},
	}}
	j := &job{e: e, b: b, unposted: []bool{true, true, true, true}}
	got := j.provenUnposted(false)
	if want := []bool{false, true, true, true}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("proven new %v, want %v: an all-digit id with a leading zero is always looked up", got, want)
	}
}
