package wepayout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrAmount is wrapped by ParseReais and Cents.UnmarshalJSON for a text
// that is not an amount.
var ErrAmount = errors.New("wepayout: invalid amount")

// FormatReais renders cents as decimal reais with a dot and exactly two
// decimals, the form WEpayout takes [doc]: 5034 -> "50.34", 7 -> "0.07".
// Integer arithmetic only.
func FormatReais(cents int64) string { return string(appendReais(nil, cents)) }

// appendReais appends FormatReais(cents) to dst.
func appendReais(dst []byte, cents int64) []byte {
	u := uint64(cents)
	if cents < 0 {
		dst = append(dst, '-')
		u = uint64(-(cents + 1)) + 1 // MinInt64 safe
	}
	dst = strconv.AppendUint(dst, u/100, 10)
	f := u % 100
	return append(dst, '.', byte('0'+f/10), byte('0'+f%10))
}

// ParseReais parses a decimal amount of reais into cents with integer
// arithmetic only. It accepts "50.34", "50.3", "50", "-1.00", and the
// formatted forms of the create answer [doc]: "R$43.34", "R$ 1,234.56" and
// the Brazilian "R$ 1.234,56". A separator followed by one or two digits at
// the end is the decimal one; the other groups thousands in threes. A lone
// separator before three digits ("1.005": 1.005 or 1005?), more than two
// decimals, an exponent, or anything else is refused (ErrAmount): an
// unreadable amount is an error, never a guess.
func ParseReais(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "R$")
	t = strings.TrimSpace(t)
	neg := false
	if strings.HasPrefix(t, "-") {
		neg, t = true, t[1:]
	}
	if t == "" {
		return 0, fmt.Errorf("%w: empty", ErrAmount)
	}
	whole, frac := t, ""
	var dec byte
	if i := strings.LastIndexAny(t, ".,"); i >= 0 && len(t)-i-1 <= 2 {
		whole, frac, dec = t[:i], t[i+1:], t[i]
		if frac == "" || whole == "" {
			return 0, fmt.Errorf("%w: %q", ErrAmount, s)
		}
	}
	// Thousands groups: the separator that is not the decimal one. One
	// lone separator before three digits ("1.005") is ambiguous: refused.
	if dec == 0 && strings.Count(whole, ".")+strings.Count(whole, ",") == 1 {
		return 0, fmt.Errorf("%w: %q is ambiguous", ErrAmount, s)
	}
	if strings.ContainsAny(whole, ".,") {
		var sep byte = ','
		if dec == ',' || (dec == 0 && strings.Contains(whole, ".")) {
			sep = '.'
		}
		groups := strings.Split(whole, string(sep))
		for i, g := range groups {
			if (i == 0 && (len(g) < 1 || len(g) > 3)) || (i > 0 && len(g) != 3) {
				return 0, fmt.Errorf("%w: %q", ErrAmount, s)
			}
		}
		whole = strings.Join(groups, "")
	}
	var cents uint64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrAmount, s)
		}
		if cents > (math.MaxInt64/100-9)/10 {
			return 0, fmt.Errorf("%w: %q is too large", ErrAmount, s)
		}
		cents = cents*10 + uint64(c-'0')
	}
	cents *= 100
	for i, m := 0, uint64(10); i < len(frac); i, m = i+1, m/10 {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrAmount, s)
		}
		cents += uint64(c-'0') * m
	}
	if neg {
		return -int64(cents), nil
	}
	return int64(cents), nil
}

// Cents is an amount in an answer, in integer cents. It accepts every
// shape WEpayout answers: a JSON integer is cents (GET [seed]), a JSON
// number with a fraction is decimal reais (what we send) [ours], a string
// is reais, plain or formatted ("R$43.34", the create answer [doc]). The
// number's text is parsed, never a float64. It marshals as the decimal
// reais number we send.
type Cents int64

// UnmarshalJSON implements json.Unmarshaler.
func (c *Cents) UnmarshalJSON(b []byte) error {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	if t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return fmt.Errorf("%w: %v", ErrAmount, err)
		}
		v, err := ParseReais(s)
		if err != nil {
			return err
		}
		*c = Cents(v)
		return nil
	}
	n := string(t)
	if strings.ContainsAny(n, "eE") {
		return fmt.Errorf("%w: %s has an exponent", ErrAmount, n)
	}
	if !strings.Contains(n, ".") && numberAmountIsCents {
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrAmount, n)
		}
		*c = Cents(v)
		return nil
	}
	whole, frac, _ := strings.Cut(n, ".")
	if strings.HasPrefix(whole, "-") {
		whole = whole[1:]
	}
	if !allDigits(whole) || len(frac) < 1 || len(frac) > 2 || !allDigits(frac) {
		return fmt.Errorf("%w: %s is not decimal reais with at most two decimals", ErrAmount, n)
	}
	v, err := ParseReais(n)
	if err != nil {
		return err
	}
	*c = Cents(v)
	return nil
}

// MarshalJSON writes decimal reais as a JSON number: 5034 -> 50.34.
func (c Cents) MarshalJSON() ([]byte, error) { return appendReais(nil, int64(c)), nil }
