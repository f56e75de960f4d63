package config

import (
	"errors"
	"testing"
)

// TestFloatSettingRefusesNaNAndInfinity: strconv.ParseFloat reads "NaN"
// and "Inf", and NaN passes CheckPositive's n <= 0. A rate such as
// WOMPI_RATE_PER_SECOND=NaN must stop the worker at start with a line that
// names the variable, not later with an error of the rate limiter that
// names none.
func TestFloatSettingRefusesNaNAndInfinity(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "infinity"} {
		var rate float64
		s := New("t", env(map[string]string{"WOMPI_RATE_PER_SECOND": v}))
		s.Float64(&rate, "rate", "WOMPI_RATE_PER_SECOND", 10, "rate").Check(func() error { return CheckPositive(rate) })
		err := s.Parse(nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Env != "WOMPI_RATE_PER_SECOND" {
			t.Errorf("WOMPI_RATE_PER_SECOND=%s: err = %v (rate %v), want one naming the variable", v, err, rate)
		}
	}
}
