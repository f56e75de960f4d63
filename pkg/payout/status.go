package payout

// Status is a request's status in our pipeline (the PayoutStatusChanged
// status enum).
type Status string

// The pipeline statuses. REJECTED, APPROVED, FAILED, CANCELLED and RETURNED
// are final; APPROVED may still be followed by RETURNED.
const (
	StatusRejected  Status = "REJECTED"  // invalid, or refused by Wompi's validation; never paid
	StatusBatched   Status = "BATCHED"   // valid and placed in exactly one batch
	StatusDeferred  Status = "DEFERRED"  // its batch waits for a daily limit to reset or a balance top-up
	StatusSubmitted Status = "SUBMITTED" // Wompi accepted its batch
	StatusPending   Status = "PENDING"   // Wompi is applying it
	StatusApproved  Status = "APPROVED"  // paid
	StatusFailed    Status = "FAILED"    // the bank refused the credit (a D* code)
	StatusCancelled Status = "CANCELLED" // the approver cancelled it; it must be sent again
	// StatusReturned is a reversal after APPROVED (SmartFastPay's returned
	// or refunded): final, and it may follow APPROVED only.
	StatusReturned Status = "RETURNED"
)

// Statuses lists every pipeline status, in the order of the Avro enum
// (PayoutStatusChanged.status): the fast status encoder writes a status as
// its index here, so new statuses are appended, never inserted.
var Statuses = []Status{StatusRejected, StatusBatched, StatusDeferred, StatusSubmitted, StatusPending, StatusApproved, StatusFailed, StatusCancelled, StatusReturned}

// rank orders the statuses along the life of a request. A transition is
// allowed only to a strictly higher rank, and never out of a final status.
func (s Status) rank() int {
	switch s {
	case StatusBatched:
		return 1
	case StatusDeferred:
		return 2
	case StatusSubmitted:
		return 3
	case StatusPending:
		return 4
	case StatusRejected, StatusApproved, StatusFailed, StatusCancelled:
		return 5
	case StatusReturned:
		return 6
	}
	return -1
}

// Valid reports whether s is one of the pipeline statuses.
func (s Status) Valid() bool { return s.rank() >= 0 }

// Final reports whether s ends a request's life: REJECTED, APPROVED,
// FAILED, CANCELLED and RETURNED. One exception leaves a final status:
// APPROVED may still be reversed to RETURNED.
func (s Status) Final() bool { return s.rank() >= 5 }

// CanTransition reports whether a request in status from may move to status
// to. The zero Status stands for "no status yet": any valid status may follow
// it. Statuses only move forward: a late PENDING after APPROVED, a repeated
// status, or anything after a final status is refused.
func CanTransition(from, to Status) bool {
	if !to.Valid() {
		return false
	}
	if from == "" {
		return true
	}
	if from == StatusApproved && to == StatusReturned {
		return true
	}
	if !from.Valid() || from.Final() || to == StatusReturned {
		return false
	}
	return to.rank() > from.rank()
}

// Beyond reports whether a provider's status to lies further along a
// request's life than from, the status an event was about to carry: a
// transition from from to to, or a RETURNED after any status not final
// (a RETURNED follows only an APPROVED, which the tracker then emits
// first). The tracker takes the provider's status when it is beyond the
// event's: a late PENDING read again as RETURNED is emitted as RETURNED,
// never PENDING after it.
func Beyond(from, to Status) bool {
	return CanTransition(from, to) || (to == StatusReturned && from.Valid() && !from.Final())
}

// BatchStatus is a Wompi batch (payout) status.
type BatchStatus string

// Wompi's batch statuses [doc]; the AFE ones are [sdk].
const (
	BatchPendingApproval BatchStatus = "PENDING_APPROVAL"
	BatchPending         BatchStatus = "PENDING"
	BatchNotApproved     BatchStatus = "NOT_APPROVED"
	BatchRejected        BatchStatus = "REJECTED"
	BatchPartialPayment  BatchStatus = "PARTIAL_PAYMENT"
	BatchTotalPayment    BatchStatus = "TOTAL_PAYMENT"
	BatchAFEOnHold       BatchStatus = "AFE_ON_HOLD"
	BatchAFERejected     BatchStatus = "AFE_REJECTED"
)

// BatchStatuses lists every batch status, in the order of the Avro enum.
var BatchStatuses = []BatchStatus{BatchPendingApproval, BatchPending, BatchNotApproved, BatchRejected, BatchPartialPayment, BatchTotalPayment, BatchAFEOnHold, BatchAFERejected}

func (s BatchStatus) rank() int {
	switch s {
	case BatchPendingApproval:
		return 0
	case BatchPending, BatchAFEOnHold:
		return 1
	case BatchNotApproved, BatchPartialPayment:
		return 2
	case BatchRejected, BatchTotalPayment, BatchAFERejected:
		return 3
	}
	return -1
}

// Valid reports whether s is a known batch status.
func (s BatchStatus) Valid() bool { return s.rank() >= 0 }

// BatchBeyond is Beyond for batches: a transition from from to to, or
// another status of the same rank out of one not final (AFE_ON_HOLD and
// PENDING, NOT_APPROVED and PARTIAL_PAYMENT, neither of which may follow
// the other).
func BatchBeyond(from, to BatchStatus) bool {
	return CanBatchTransition(from, to) || (to != from && from.Valid() && to.Valid() && !from.Final() && to.rank() == from.rank())
}

// Final reports whether s is final: REJECTED and TOTAL_PAYMENT [doc], and
// AFE_REJECTED [ours: an anti-fraud rejection is not retried by Wompi].
func (s BatchStatus) Final() bool { return s.rank() == 3 }

// CanBatchTransition reports whether a batch may move from one Wompi status
// to another. As for requests, statuses only move forward; the zero value
// means "no status yet".
func CanBatchTransition(from, to BatchStatus) bool {
	if !to.Valid() {
		return false
	}
	if from == "" {
		return true
	}
	if !from.Valid() || from.Final() {
		return false
	}
	return to.rank() > from.rank()
}
