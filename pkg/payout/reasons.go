package payout

// Reasons the dispatcher gives when it moves a batch aside.
const (
	// ReasonPayoutNotVisible: the provider holds the batch's idempotency
	// key (Wompi's 409 EXC_022) but its lookup by our reference does not
	// show the payout within the dispatcher's patience. The batch is
	// deferred and looked up again before any further POST.
	ReasonPayoutNotVisible Reason = "PAYOUT_NOT_VISIBLE"
)

// ReasonDispatchFailed: the dispatcher could not pay the batch and no retry
// would help (a provider 4xx on the batch as a whole, a batch its budget
// refuses as invalid, a batch that cannot be encoded). No payout holds it.
const ReasonDispatchFailed Reason = "DISPATCH_FAILED"
