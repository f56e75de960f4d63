package ingest

import (
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// validateFor checks req against the rules of the rail it pays through:
// Wompi's (wompi.Validate), or the envelope every rail needs plus the
// single-payout rail's own. Single payouts go out at once: a dispersion
// date or a recurrence is refused on those rails.
func validateFor(name rail.Name, req *payout.Request, now time.Time) payout.Violations {
	if name != rail.SmartFastPay && name != rail.WEpayout {
		return wompi.Validate(req, now)
	}
	vs := payout.ValidateEnvelope(req)
	if req.DispersionDatetime != nil {
		vs = append(vs, payout.Violation{Reason: payout.ReasonInvalidDispersion,
			Message: string(name) + " pays at once: dispersionDatetime is not supported"})
	}
	if req.Recurring != nil {
		vs = append(vs, payout.Violation{Reason: payout.ReasonInvalidRecurring,
			Message: string(name) + " pays at once: recurring is not supported"})
	}
	payee := rail.PayeeOf(&req.Beneficiary)
	if name == rail.SmartFastPay {
		vs = append(vs, smartfastpay.Validate(req.Currency, req.AmountInCents, payee)...)
	} else {
		vs = append(vs, wepayout.Validate(req.Currency, req.AmountInCents, payee)...)
	}
	// The dispatcher reserves every rail's batches against one per-account
	// daily limit (DAILY_LIMIT_CENTS, by default Wompi's): a request alone
	// above it would be deferred every day, never paid nor ended. Wompi's
	// rules refuse it (wompi.Validate); so do the others'.
	if req.AmountInCents > wompi.DefaultDailyLimitCents {
		vs = append(vs, payout.Violation{Reason: payout.ReasonAmountOverLimit,
			Message: "amountInCents is above an account's daily limit of 1,500,000,000.00"})
	}
	return vs
}
