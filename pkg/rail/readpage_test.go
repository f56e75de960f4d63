package rail

import (
	"context"
	"net/http"
	"testing"
)

// ReadPage asks again after a retryable failure or an unknown outcome, up
// to ListPageRetries times, but not after a 429 or a permanent refusal.
func TestReadPage(t *testing.T) {
	cases := []struct {
		name  string
		err   *Error
		fails int // failures before the page is read
		calls int
		ok    bool
	}{
		{"503 once", &Error{Class: Retryable, HTTPStatus: 503}, 1, 2, true},
		{"503 as often as allowed", &Error{Class: Retryable, HTTPStatus: 503}, ListPageRetries, ListPageRetries + 1, true},
		{"503 once too often", &Error{Class: Retryable, HTTPStatus: 503}, ListPageRetries + 1, ListPageRetries + 1, false},
		{"timeout", &Error{Class: OutcomeUnknown}, 1, 2, true},
		{"429", &Error{Class: Retryable, HTTPStatus: http.StatusTooManyRequests}, 1, 1, false},
		{"403", &Error{Class: Unauthorized, HTTPStatus: 403}, 1, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := ReadPage(context.Background(), func() (int, error) {
				calls++
				if calls <= tc.fails {
					return 0, tc.err
				}
				return 7, nil
			})
			if calls != tc.calls || (err == nil) != tc.ok || (tc.ok && v != 7) {
				t.Fatalf("%d calls, %v, %v; want %d calls, ok=%v", calls, v, err, tc.calls, tc.ok)
			}
		})
	}
}
