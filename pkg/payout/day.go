package payout

import (
	"fmt"
	"time"
	_ "time/tzdata" // Bogota must resolve in scratch images with no zoneinfo.
)

// Bogota is America/Bogota (UTC-5, no daylight saving). Wompi's daily limits
// and "at least the next day" rule are counted in Bogota calendar days [ours:
// Wompi does not publish the zone; Colombia has one].
var Bogota = mustLoad("America/Bogota")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("payout: load %s: %v", name, err))
	}
	return loc
}

// Day is a Bogota calendar day, formatted YYYY-MM-DD. It is the key of every
// daily budget.
type Day string

// DayOf returns the Bogota calendar day that contains t.
func DayOf(t time.Time) Day {
	var buf [10]byte
	return Day(t.In(Bogota).AppendFormat(buf[:0], time.DateOnly))
}

// DayIn returns the calendar day of loc that contains t: a rail's business
// day when loc is the rail's zone (rail.Location). DayIn(t, Bogota) is
// DayOf(t).
func DayIn(t time.Time, loc *time.Location) Day {
	var buf [10]byte
	return Day(t.In(loc).AppendFormat(buf[:0], time.DateOnly))
}

// ParseDay parses a YYYY-MM-DD day.
func ParseDay(s string) (Day, error) {
	if _, err := time.ParseInLocation(time.DateOnly, s, Bogota); err != nil {
		return "", fmt.Errorf("payout: day %q is not YYYY-MM-DD", s)
	}
	return Day(s), nil
}

// Start returns midnight in Bogota at the start of d.
func (d Day) Start() time.Time {
	t, err := time.ParseInLocation(time.DateOnly, string(d), Bogota)
	if err != nil {
		return time.Time{}
	}
	return t
}

// StartIn returns midnight in loc at the start of d.
func (d Day) StartIn(loc *time.Location) time.Time {
	t, err := time.ParseInLocation(time.DateOnly, string(d), loc)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Next returns the day after d.
func (d Day) Next() Day { return DayOf(d.Start().Add(36 * time.Hour)) }

// String returns the YYYY-MM-DD form.
func (d Day) String() string { return string(d) }

// BudgetDay returns the Bogota day a batch's money and batch slot count
// against: its dispersion day when it is scheduled, else the day it is
// submitted (now).
func (s Schedule) BudgetDay(now time.Time) Day {
	if s.DispersionDatetime != nil {
		return DayOf(*s.DispersionDatetime)
	}
	return DayOf(now)
}

// BudgetDayIn is BudgetDay in loc's calendar days (a rail's zone):
// BudgetDayIn(now, Bogota) is BudgetDay(now).
func (s Schedule) BudgetDayIn(now time.Time, loc *time.Location) Day {
	if s.DispersionDatetime != nil {
		return DayIn(*s.DispersionDatetime, loc)
	}
	return DayIn(now, loc)
}

// WompiDatetimeLayout is the layout of Wompi's dispersionDatetime
// (YYYY-MM-DDTHH:mm), read in Bogota time.
const WompiDatetimeLayout = "2006-01-02T15:04"

// FormatWompiDatetime renders t as Wompi's dispersionDatetime in Bogota time.
func FormatWompiDatetime(t time.Time) string { return t.In(Bogota).Format(WompiDatetimeLayout) }
