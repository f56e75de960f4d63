package smartfastpay

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"98000.00", 9_800_000, true},
		{"2", 200, true},
		{"2.5", 250, true},
		{"2.50", 250, true},
		{"300.10", 30010, true},
		{"0.01", 1, true},
		{"1.230", 123, true},
		{"0", 0, true},
		{"92233720368547757.00", 9223372036854775700, true},
		{"92233720368547758.07", math.MaxInt64, true},
		{"92233720368547758.08", 0, false}, // beyond int64 cents
		{"92233720368547759", 0, false},
		{"999999999999999999999", 0, false},
		{"1.234", 0, false},
		{"-1", 0, false},
		{"-1.00", 0, false},
		{"+1", 0, false},
		{"1e3", 0, false},
		{"1,50", 0, false},
		{" 1", 0, false},
		{"1.", 0, false},
		{".5", 0, false},
		{"", 0, false},
		{"abc", 0, false},
		{"NaN", 0, false},
		{"1.2.3", 0, false},
	} {
		got, err := ParseAmount(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrAmount) {
			t.Errorf("ParseAmount(%q): %v does not wrap ErrAmount", tc.in, err)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{{12345, "123.45"}, {200, "2.00"}, {5, "0.05"}, {0, "0.00"}, {9_800_000, "98000.00"}, {math.MaxInt64, "92233720368547758.07"}} {
		got, err := FormatAmount(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("FormatAmount(%d) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if back, err := ParseAmount(got); err != nil || back != tc.in {
			t.Errorf("round trip of %d: %d, %v", tc.in, back, err)
		}
	}
	if _, err := FormatAmount(-1); !errors.Is(err, ErrAmount) {
		t.Errorf("FormatAmount(-1): %v, want ErrAmount", err)
	}
}

func TestAmountJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`"98000.00"`, 9_800_000, true},
		{`98000`, 9_800_000, true},
		{`98000.00`, 9_800_000, true},
		{`300.1`, 30010, true},
		{`"2"`, 200, true},
		{`-5`, 0, false},
		{`"-5.00"`, 0, false},
		{`1e5`, 0, false},
		{`"x"`, 0, false},
		{`true`, 0, false},
		{`{}`, 0, false},
	} {
		var a Amount
		err := json.Unmarshal([]byte(tc.in), &a)
		if tc.ok != (err == nil) || int64(a) != tc.want {
			t.Errorf("unmarshal %s = %d, %v; want %d ok=%v", tc.in, a, err, tc.want, tc.ok)
		}
	}
	b, err := json.Marshal(struct {
		A Amount `json:"amount"`
	}{30010})
	if err != nil || string(b) != `{"amount":300.10}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
}
