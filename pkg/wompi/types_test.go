package wompi

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Wompi's wire format reads dispersionDatetime and the /limits date in
// Bogota time; the rail's business day (rail.Location) must agree.
func TestBogotaWireTimes(t *testing.T) {
	for _, tc := range []struct {
		at       time.Time
		day, fmt string
	}{
		{time.Date(2026, 11, 22, 4, 59, 0, 0, time.UTC), "2026-11-21", "2026-11-21T23:59"},
		{time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC), "2026-11-22", "2026-11-22T00:00"},
		{time.Date(2026, 11, 22, 13, 30, 0, 0, time.UTC), "2026-11-22", "2026-11-22T08:30"},
	} {
		if got := BogotaDay(tc.at); got != tc.day {
			t.Errorf("BogotaDay(%v) = %s, want %s", tc.at, got, tc.day)
		}
		if got := payout.DayIn(tc.at, rail.Location(rail.Wompi)).String(); got != tc.day {
			t.Errorf("the Wompi rail's day of %v = %s, want %s", tc.at, got, tc.day)
		}
		if got := FormatDispersion(tc.at); got != tc.fmt {
			t.Errorf("FormatDispersion(%v) = %s, want %s", tc.at, got, tc.fmt)
		}
	}
}

func TestTransactionPayoutStatus(t *testing.T) {
	want := map[TransactionStatus]payout.Status{TransactionPending: payout.StatusPending, TransactionProcessing: payout.StatusPending,
		TransactionApproved: payout.StatusApproved, TransactionFailed: payout.StatusFailed, TransactionRejected: payout.StatusFailed,
		TransactionCancelled: payout.StatusCancelled}
	for tx, st := range want {
		if got, ok := tx.PayoutStatus(); !ok || got != st {
			t.Errorf("%s.PayoutStatus() = %s, %v", tx, got, ok)
		}
	}
	if _, ok := TransactionStatus("WHATEVER").PayoutStatus(); ok {
		t.Error("unknown status mapped")
	}
}
