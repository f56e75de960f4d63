package wompi

import (
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TestRailClassPost5xxWithoutFlag: a 5xx to a POST built without the
// OutcomeUnknown flag (an Error of a caller's own) is still an unknown
// outcome, never a Retryable that would POST again at once; a 5xx to a
// read stays Retryable.
func TestRailClassPost5xxWithoutFlag(t *testing.T) {
	for _, s := range []int{500, 502, 503, 504} {
		checkClass(t, http.StatusText(s)+" to a POST, no flag", &Error{Method: http.MethodPost, Path: "/payouts", HTTPStatus: s}, rail.OutcomeUnknown)
		checkClass(t, http.StatusText(s)+" to a GET", &Error{Method: http.MethodGet, Path: "/payouts", HTTPStatus: s}, rail.Retryable)
	}
}
