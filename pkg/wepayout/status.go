package wepayout

import (
	"strconv"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// MapStatus maps a WEpayout status id to a pipeline status and a reason
// [ours]: 1 Created, 2 Processing and 7 Awaiting -> PENDING; 3 Paid ->
// APPROVED; 4 Failed -> FAILED; 5 Rejected (compliance) -> FAILED with
// ReasonStatus5; 6 Cancelled -> CANCELLED with detail's code when present
// (e.g. WE0001; maskCode), else ReasonStatus6. Any other id maps to "" and known
// false: it is never final, and the caller keeps the last status and
// counts it.
func MapStatus(id int, detail *StatusDetail) (st payout.Status, reason string, known bool) {
	switch id {
	case StatusCreated, StatusProcessing, StatusAwaiting:
		return payout.StatusPending, "", true
	case StatusPaid:
		return payout.StatusApproved, "", true
	case StatusFailed:
		return payout.StatusFailed, "", true
	case StatusRejected:
		return payout.StatusFailed, ReasonStatus5, true
	case StatusCancelled:
		if detail != nil && detail.Code != "" {
			return payout.StatusCancelled, maskCode(detail.Code, nil), true
		}
		return payout.StatusCancelled, ReasonStatus6, true
	}
	return "", "", false
}

// Payout maps the payment to the seam's Payout.
func (p *Payment) Payout() rail.Payout {
	st, reason, _ := MapStatus(p.Status.ID, p.StatusDetail)
	return rail.Payout{
		ProviderID:     string(p.ID),
		ID:             p.OurID(),
		Status:         st,
		ProviderStatus: strconv.Itoa(p.Status.ID),
		Reason:         reason,
		AmountInCents:  int64(p.Amount),
		CreatedAt:      p.CreatedAt.Time,
		UpdatedAt:      p.UpdatedAt.Time,
	}
}
