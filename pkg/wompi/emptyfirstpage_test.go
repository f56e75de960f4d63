package wompi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// TestPaginateRefusesAnEmptyFirstPageWithinItsTotal: the reconciliation
// query after a lost answer or EXC_022 (FindPayoutsByReference) is
// answered with an empty first page whose own total counts a batch (a
// server copy with the count but not yet the record). Records are never
// deleted, so it is no end: taken as one, the batch would be proven
// absent and its payees posted again under a new key.
func TestPaginateRefusesAnEmptyFirstPageWithinItsTotal(t *testing.T) {
	for name, first := range map[string]string{
		"announcing one page": `{"page":1,"limit":1,"total":1,"pages":1,"records":[]}`,
		"announcing no pages": `{"page":1,"limit":1,"total":1,"pages":0,"records":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := pagesServer(t, map[string]string{"1": first})
			ids, err := walk(c, wompi.PayoutsFilter{Limit: 1})
			if !errors.Is(err, wompi.ErrInconsistentPage) || !wompi.IsRetryable(err) {
				t.Fatalf("listed %v, %v: want a retryable ErrInconsistentPage, never a listing that looks complete", ids, err)
			}
			found, err := c.FindPayoutsByReference(context.Background(), "b-1")
			if !errors.Is(err, wompi.ErrInconsistentPage) {
				t.Fatalf("FindPayoutsByReference: %v, %v: an empty page within its total proved the batch absent", found, err)
			}
		})
	}
}
