package payout

import (
	"math"
	"strconv"
)

// Money is always an integer count of COP cents: 1000000 is $10,000.00.
// There are no floats anywhere on the money path.

// AddCents adds two amounts, reporting false on overflow.
func AddCents(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// FormatCOP renders cents as pesos, e.g. 1000000 → "$10,000.00".
func FormatCOP(cents int64) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	var out []byte
	if neg {
		out = append(out, '-')
	}
	out = append(out, '$')
	for i, c := range []byte(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	frac := cents % 100
	out = append(out, '.', byte('0'+frac/10), byte('0'+frac%10))
	return string(out)
}
