package rail

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

func TestLocationIsTheRailsBusinessDay(t *testing.T) {
	at := time.Date(2026, 11, 22, 4, 59, 0, 0, time.UTC) // 23:59 in Bogota, 01:59 in Sao Paulo
	for _, tc := range []struct {
		rail Name
		zone string
		day  payout.Day
	}{
		{Wompi, "America/Bogota", "2026-11-21"},
		{SmartFastPay, "America/Bogota", "2026-11-21"},
		{WEpayout, "America/Sao_Paulo", "2026-11-22"},
	} {
		loc := Location(tc.rail)
		if loc.String() != tc.zone {
			t.Errorf("Location(%s) = %s, want %s", tc.rail, loc, tc.zone)
		}
		if got := payout.DayIn(at, loc); got != tc.day {
			t.Errorf("%s: day of %v = %s, want %s", tc.rail, at, got, tc.day)
		}
		if got := payout.DayIn(at, loc).StartIn(loc); got.After(at) || !got.Add(24*time.Hour).After(at) {
			t.Errorf("%s: the day of %v starts at %v", tc.rail, at, got)
		}
	}
}

func TestCurrency(t *testing.T) {
	for n, want := range map[Name]string{Wompi: "COP", SmartFastPay: "COP", WEpayout: "BRL"} {
		if got := Currency(n); got != want {
			t.Errorf("Currency(%s) = %q, want %q", n, got, want)
		}
	}
}
