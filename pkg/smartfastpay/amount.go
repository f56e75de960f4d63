package smartfastpay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrAmount is wrapped by every amount conversion that fails.
var ErrAmount = errors.New("smartfastpay: invalid amount")

// FormatAmount writes cents as the decimal units SmartFastPay takes: a dot
// and exactly two decimals (12345 -> "123.45") [seed]. Integer arithmetic
// only. A negative amount is refused.
func FormatAmount(cents int64) (string, error) {
	if cents < 0 {
		return "", fmt.Errorf("%w: negative", ErrAmount)
	}
	units, frac := cents/100, cents%100
	return strconv.FormatInt(units, 10) + "." + string([]byte{byte('0' + frac/10), byte('0' + frac%10)}), nil
}

// ParseAmount reads a decimal amount in units ("98000.00", "2", "2.5") as
// cents, with integer arithmetic only. It refuses a sign, an exponent,
// spaces, a bare dot, more than two significant decimals ("1.234"; "1.230"
// is 123) and anything beyond int64.
func ParseAmount(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrAmount)
	}
	intPart, fracPart := s, ""
	if i := indexByte(s, '.'); i >= 0 {
		intPart, fracPart = s[:i], s[i+1:]
		if fracPart == "" {
			return 0, fmt.Errorf("%w: nothing after the dot", ErrAmount)
		}
	}
	if intPart == "" || !allDigits(intPart) || !allDigits(fracPart) {
		return 0, fmt.Errorf("%w: not a plain decimal", ErrAmount)
	}
	for len(fracPart) > 2 {
		if fracPart[len(fracPart)-1] != '0' {
			return 0, fmt.Errorf("%w: more than two decimals", ErrAmount)
		}
		fracPart = fracPart[:len(fracPart)-1]
	}
	var units int64
	for i := 0; i < len(intPart); i++ {
		d := int64(intPart[i] - '0')
		if units > (math.MaxInt64/100-d)/10 {
			return 0, fmt.Errorf("%w: too large", ErrAmount)
		}
		units = units*10 + d
	}
	var frac int64
	switch len(fracPart) {
	case 1:
		frac = int64(fracPart[0]-'0') * 10
	case 2:
		frac = int64(fracPart[0]-'0')*10 + int64(fracPart[1]-'0')
	}
	if units*100 > math.MaxInt64-frac {
		return 0, fmt.Errorf("%w: too large", ErrAmount)
	}
	cents := units*100 + frac
	return cents, nil
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Amount is an amount in cents that reads both forms the API uses, a
// decimal string ("98000.00") or a JSON number (98000, 300.10) [seed], and
// writes a JSON number with two decimals (300.10). It never goes through a
// float.
type Amount int64

// UnmarshalJSON implements json.Unmarshaler. null leaves the value alone.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%w: %v", ErrAmount, err)
		}
	}
	c, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = Amount(c)
	return nil
}

// MarshalJSON implements json.Marshaler: a number literal such as 300.10.
func (a Amount) MarshalJSON() ([]byte, error) {
	s, err := FormatAmount(int64(a))
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}
