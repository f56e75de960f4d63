package wepayout

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestFormatReais(t *testing.T) {
	for _, tc := range []struct {
		cents int64
		want  string
	}{
		{0, "0.00"}, {1, "0.01"}, {7, "0.07"}, {10, "0.10"}, {5034, "50.34"}, {12345, "123.45"},
		{100000000, "1000000.00"}, {-1, "-0.01"}, {-5, "-0.05"}, {-12345, "-123.45"},
		{math.MaxInt64, "92233720368547758.07"}, {math.MinInt64, "-92233720368547758.08"},
	} {
		if got := FormatReais(tc.cents); got != tc.want {
			t.Errorf("FormatReais(%d) = %q, want %q", tc.cents, got, tc.want)
		}
	}
}

func TestParseReais(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "50.34", want: 5034}, {in: "0.29", want: 29}, {in: "1.005", bad: true}, {in: "50.3", want: 5030},
		{in: "50", want: 5000}, {in: "R$43.34", want: 4334}, {in: "R$ 43.34", want: 4334},
		{in: "R$ 1.234,56", want: 123456}, {in: "R$ 1,234.56", want: 123456}, {in: "1.234.567,89", want: 123456789},
		{in: "R$1.234", bad: true}, // ambiguous: 1.234 or 1234?
		{in: "R$1.234.567", want: 123456700}, {in: "1,005", bad: true},
		{in: "-1.00", want: -100}, {in: "", bad: true}, {in: "R$", bad: true}, {in: "1e3", bad: true},
		{in: "12,34,56", bad: true}, {in: "1.2.3", bad: true}, {in: ".50", bad: true}, {in: "50.", bad: true},
		{in: "abc", bad: true}, {in: "99999999999999999999", bad: true},
	} {
		got, err := ParseReais(tc.in)
		if tc.bad {
			if err == nil || !errors.Is(err, ErrAmount) {
				t.Errorf("ParseReais(%q) = %d, %v: want ErrAmount", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseReais(%q) = %d, %v: want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestAmountRoundTrip: every cents value survives FormatReais then
// ParseReais and a JSON round trip, including the values a float64 gets
// wrong (0.29 * 100 = 28.999999999999996).
func TestAmountRoundTrip(t *testing.T) {
	check := func(c int64) {
		if got, err := ParseReais(FormatReais(c)); err != nil || got != c {
			t.Fatalf("round trip of %d: %d %v", c, got, err)
		}
		b, _ := json.Marshal(Cents(c))
		var back Cents
		if err := json.Unmarshal(b, &back); err != nil || int64(back) != c {
			t.Fatalf("JSON round trip of %d via %s: %d %v", c, b, back, err)
		}
	}
	for c := int64(-1000); c <= 100000; c++ {
		check(c)
	}
	for _, c := range []int64{29, 57, 115, 1_000_000_01, 9_007_199_254_740_993, math.MaxInt64 / 2} {
		check(c)
	}
	if f := 0.29 * 100; int64(f) == 29 {
		t.Log("float64 happens to be exact here; the integer path does not depend on it")
	}
}

// TestCentsShapes: an answer's amount in every shape WEpayout uses.
func TestCentsShapes(t *testing.T) {
	for _, tc := range []struct {
		json string
		want int64
		bad  bool
	}{
		{json: `10000`, want: 10000},                       // GET: integer cents [seed]
		{json: `"R$43.34"`, want: 4334},                    // create: formatted reais [doc]
		{json: `"R$ 1.234,56"`, want: 123456},              // Brazilian formatting
		{json: `"43.34"`, want: 4334},                      // plain string reais
		{json: `50.34`, want: 5034},                        // a number with a fraction: reais
		{json: `0.29`, want: 29},                           // parsed from its text, not a float
		{json: `null`, want: 0},                            // absent
		{json: `5e3`, bad: true},                           // exponent
		{json: `"fifty"`, bad: true},                       // not an amount
		{json: `12.345`, bad: true},                        // three decimals
		{json: `99999999999999999999`, bad: true},          // overflow
		{json: `9223372036854775807`, want: math.MaxInt64}, // the largest
	} {
		var c Cents
		err := json.Unmarshal([]byte(tc.json), &c)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: got %d, want an error", tc.json, c)
			}
			continue
		}
		if err != nil || int64(c) != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.json, c, err, tc.want)
		}
	}
}
