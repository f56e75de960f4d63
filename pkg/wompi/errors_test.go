package wompi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

func TestValidIdempotencyKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"Rs122k1sas", true}, {"a", true}, {strings.Repeat("a", 64), true}, {"batch-0b6a-01", true},
		{"", false}, {strings.Repeat("a", 65), false}, {"has_underscore", false}, {"has space", false},
		{"ñandú", false}, {"a.b", false}, {"a/b", false},
	}
	for _, tt := range tests {
		if got := ValidIdempotencyKey(tt.key); got != tt.want {
			t.Errorf("ValidIdempotencyKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestErrorRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want bool
	}{
		{"500", &Error{HTTPStatus: 500}, true},
		{"502", &Error{HTTPStatus: 502}, true},
		{"503", &Error{HTTPStatus: 503, Code: CodeServiceUnavailable}, true},
		{"429", &Error{HTTPStatus: 429}, true},
		{"400 validation", &Error{HTTPStatus: 400, Code: CodeValidation}, false},
		{"400 EXC_008", &Error{HTTPStatus: 400, Code: CodeInsufficientBalance}, false},
		{"401", &Error{HTTPStatus: 401}, false},
		{"404", &Error{HTTPStatus: 404}, false},
		{"409 EXC_022", &Error{HTTPStatus: 409, Code: CodeIdempotencyReused}, false},
		{"net timeout", &Error{Err: timeoutErr{}}, true},
		{"deadline", &Error{Err: context.DeadlineExceeded}, true},
		{"EOF", &Error{Err: io.ErrUnexpectedEOF}, true},
		{"reset", &Error{Err: errors.New("read: connection reset by peer")}, true},
		{"caller cancelled", &Error{Err: context.Canceled}, false},
	}
	for _, tt := range tests {
		if got := tt.err.Retryable(); got != tt.want {
			t.Errorf("%s: Retryable = %v, want %v", tt.name, got, tt.want)
		}
		wrapped := fmt.Errorf("dispatch: %w", tt.err)
		if IsRetryable(wrapped) != tt.want {
			t.Errorf("%s: IsRetryable through %%w differs", tt.name)
		}
	}
	if IsRetryable(errors.New("plain")) {
		t.Error("a non-*Error is not retryable")
	}
	if !(&Error{Err: timeoutErr{}}).Timeout() || (&Error{HTTPStatus: 504}).Timeout() {
		t.Error("Timeout classification")
	}
}

func TestErrorHelpers(t *testing.T) {
	e := fmt.Errorf("x: %w", &Error{HTTPStatus: 400, Code: CodeDailyLimit})
	if !IsCode(e, CodeDailyLimit) || IsCode(e, CodeIdempotencyReused) || !IsDeferrable(e) || !IsStatus(e, 400) {
		t.Error("helpers on EXC_017")
	}
	for _, c := range []string{CodeInsufficientBalance, CodeDailyBatchLimit} {
		if !IsDeferrable(&Error{HTTPStatus: 400, Code: c}) {
			t.Errorf("%s must be deferrable", c)
		}
	}
	if IsDeferrable(&Error{HTTPStatus: 400, Code: CodeValidation}) {
		t.Error("validation is not deferrable")
	}
	if !IsOutcomeUnknown(&Error{Method: "POST", OutcomeUnknown: true}) || IsOutcomeUnknown(&Error{}) {
		t.Error("IsOutcomeUnknown")
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	cfg := Config{APIKey: "key-SECRET-1", PrincipalID: "principal-SECRET-2", BaseURL: "http://x/v1"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		C   *Client
		Cfg Config
	}
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprintf("%v %+v %#v", &cfg, &cfg, &cfg),
		fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%v %+v %#v", *c, *c, holder{c, cfg}),
	} {
		if strings.Contains(s, "SECRET") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	if _, err := New(Config{APIKey: "k"}); !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "k\"") {
		t.Fatalf("missing principal: %v", err)
	}
	if _, err := New(Config{APIKey: "k", PrincipalID: "p", BaseURL: "ftp://x"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad base URL: %v", err)
	}
}

func TestFailureReasonShapes(t *testing.T) {
	var f FailureReason
	for in, want := range map[string]FailureReason{
		`"D07: Account number does not exist"`: {"D07", "D07: Account number does not exist"},
		`"D19"`:                                {"D19", "D19"},
		`"Rejected by bank"`:                   {"", "Rejected by bank"},
		`{"code":"C01","message":"m"}`:         {"C01", "m"},
		`null`:                                 {},
	} {
		if err := f.UnmarshalJSON([]byte(in)); err != nil || f != want {
			t.Errorf("%s: got %+v %v, want %+v", in, f, err, want)
		}
	}
}

func TestMasking(t *testing.T) {
	if got := MaskAccountNumber("12345678901"); got != "*******8901" {
		t.Errorf("MaskAccountNumber = %q", got)
	}
	if got := MaskEmail("ana@example.co"); got != "a***@example.co" {
		t.Errorf("MaskEmail = %q", got)
	}
	v := TransactionRequest{AccountNumber: "12345678901", LegalID: "1000123456", Email: "ana@example.co"}.LogValue().String()
	if strings.Contains(v, "12345678901") || strings.Contains(v, "1000123456") || strings.Contains(v, "ana@") {
		t.Errorf("LogValue leaks PII: %s", v)
	}
}
