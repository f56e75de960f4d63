package wompi

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

var _ rail.BatchTracking = (*Rail)(nil)

// lookupError is railError for a read of one id: a 404 (Wompi does not
// know the id) also wraps rail.ErrNotFound.
func lookupError(op string, err error) error {
	re := railError(op, err)
	if IsStatus(err, http.StatusNotFound) {
		re.(*rail.Error).Err = fmt.Errorf("%w: %w", rail.ErrNotFound, err)
	}
	return re
}

// GetBatch reads GET /payouts/{id} (see rail.BatchTracking).
func (r *Rail) GetBatch(ctx context.Context, providerID string) (rail.Batch, error) {
	p, err := r.c.Payout(ctx, providerID)
	if err != nil {
		return rail.Batch{}, lookupError("get", err)
	}
	return batchOf(p), nil
}

// Item reads GET /payouts/{id}/transactions/{txId}: Wompi answers 404 for
// a transaction that is not one of that payout's.
func (r *Rail) Item(ctx context.Context, providerBatchID, providerItemID string) (rail.Payout, error) {
	t, err := r.c.PayoutTransaction(ctx, providerBatchID, providerItemID)
	if err != nil {
		return rail.Payout{}, lookupError("item", err)
	}
	it := t.item()
	return itemOf(&it), nil
}

// BatchesByStatus walks GET /payouts?status=...&fromDate=, every page.
// fromDate is the Bogota day of since (none for a zero since). PENDING,
// PARTIAL_PAYMENT, NOT_APPROVED, TOTAL_PAYMENT and REJECTED are documented
// filter values [doc]; AFE_ON_HOLD and AFE_REJECTED only an SDK names
// [sdk], and Wompi may refuse them (a 4xx).
func (r *Rail) BatchesByStatus(ctx context.Context, since time.Time, statuses ...payout.BatchStatus) iter.Seq2[rail.Batch, error] {
	f := PayoutsFilter{}
	for _, s := range statuses {
		f.Statuses = append(f.Statuses, BatchStatus(s))
	}
	if !since.IsZero() {
		f.FromDate = BogotaDay(since)
	}
	return r.batches(ctx, f)
}
