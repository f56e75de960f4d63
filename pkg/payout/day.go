package payout

import (
	"fmt"
	"time"
)

// Day is a calendar day, formatted YYYY-MM-DD: the key of every daily
// budget. It is a day of a rail's business time zone (rail.Location:
// America/Bogota for Wompi and SmartFastPay, America/Sao_Paulo for
// WEpayout); the zone is never implied, every conversion between an
// instant and a Day names it.
type Day string

// DayIn returns the calendar day of loc that contains t: a rail's business
// day when loc is the rail's zone (rail.Location).
func DayIn(t time.Time, loc *time.Location) Day {
	var buf [10]byte
	return Day(t.In(loc).AppendFormat(buf[:0], time.DateOnly))
}

// ParseDay parses a YYYY-MM-DD day.
func ParseDay(s string) (Day, error) {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "", fmt.Errorf("payout: day %q is not YYYY-MM-DD", s)
	}
	return Day(s), nil
}

// StartIn returns midnight in loc at the start of d.
func (d Day) StartIn(loc *time.Location) time.Time {
	t, err := time.ParseInLocation(time.DateOnly, string(d), loc)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Next returns the day after d: calendar arithmetic, the same in every zone.
func (d Day) Next() Day { return DayIn(d.StartIn(time.UTC).Add(36*time.Hour), time.UTC) }

// String returns the YYYY-MM-DD form.
func (d Day) String() string { return string(d) }

// BudgetDayIn returns the day of loc (a rail's zone) a batch's money and
// batch slot count against: its dispersion day when it is scheduled, else
// the day it is submitted (now).
func (s Schedule) BudgetDayIn(now time.Time, loc *time.Location) Day {
	if s.DispersionDatetime != nil {
		return DayIn(*s.DispersionDatetime, loc)
	}
	return DayIn(now, loc)
}
