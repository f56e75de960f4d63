package smartfastpay

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TestCreateDialEndedByTheContextIsUnknown: only a dial that failed on
// its own proves a create unsent. A dial error that is the context's
// (cancelled, or its deadline) is classed as the documented "cancelled
// context": OutcomeUnknown for a create, looked up before any repeat.
func TestCreateDialEndedByTheContextIsUnknown(t *testing.T) {
	for _, cause := range []error{context.Canceled, context.DeadlineExceeded} {
		err := &net.OpError{Op: "dial", Net: "tcp", Err: cause}
		if got := transportError("create", true, err).Class; got != rail.OutcomeUnknown {
			t.Errorf("create, dial ended by %v: %s, want %s", cause, got, rail.OutcomeUnknown)
		}
		if got := transportError("get", false, err).Class; got != rail.Retryable {
			t.Errorf("read, dial ended by %v: %s, want %s", cause, got, rail.Retryable)
		}
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	if got := transportError("create", true, refused).Class; got != rail.Retryable {
		t.Errorf("create, connection refused: %s, want %s", got, rail.Retryable)
	}
}
