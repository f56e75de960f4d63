package ratelimit

import (
	"errors"
	"strings"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Errors returned by this package. Match them with errors.Is; the returned
// errors wrap them with details.
var (
	// ErrNotSeeded is matched by the [*NotSeededError] of [Budget.Reserve]
	// and [Budget.Move] when Redis does not know the account's amount on the
	// amount day, or the rail's batch count on the slot day: the first
	// reservation of a day, or after Redis lost its data (or after an
	// upgrade that changed the key layout). The caller must read what the
	// rail says is already consumed (for Wompi: GET /limits, GET /payouts
	// of the day), seed the parts the error names ([Budget.SeedAmount],
	// [Budget.SeedBatches]) for its rail, then retry. Nothing was reserved.
	ErrNotSeeded = errors.New("ratelimit: day budget not seeded; rebuild it from Wompi's figures")

	// ErrReservationConflict is returned by [Budget.Reserve] and
	// [Budget.Move] when the batch id already holds a reservation on the
	// amount day for a different account, amount or slot day: the batch's
	// kept transactions changed, or it is now posted on another day.
	// Nothing was changed; release the old reservation if the batch was
	// never posted.
	ErrReservationConflict = errors.New("ratelimit: batch id already holds a different reservation")

	// ErrServerChanged is returned by [Budget.Reserve] and [Budget.Move]
	// when the Redis process that holds the budgets is not the one
	// [Budget.Stamp] last named: it restarted (from a snapshot or an AOF
	// that may predate the last writes) or failed over to a replica (which
	// may have missed them). The budgets may then have lost their last
	// reservations while still reading as seeded, and on a Redis Cluster no
	// other marker notices it (the budgets' master alone). Nothing was
	// reserved: the caller must count again what the rails list for the day
	// (the dispatcher's recovery) and call Stamp before reserving again.
	ErrServerChanged = errors.New("ratelimit: the budgets' Redis process changed since they were stamped; count the rails' listings again")

	// ErrInvalid is returned for arguments or configuration that can never
	// succeed: an empty id, a malformed day, a non-positive amount, a prefix
	// or key with braces.
	ErrInvalid = errors.New("ratelimit: invalid argument")
)

// NotSeededError says which part of a reservation's budget Redis does not
// know. It matches [ErrNotSeeded] with errors.Is.
type NotSeededError struct {
	// Rail is the rail whose budgets need the seed (never "": Wompi is
	// named).
	Rail      rail.Name
	AccountID string
	// AmountDay is the day whose amount of the account must be seeded
	// ([Budget.SeedAmount]); "" when it is known.
	AmountDay string
	// SlotDay is the day whose batch count of the rail must be seeded
	// ([Budget.SeedBatches]); "" when it is known or the rail has no cap.
	SlotDay string
}

func (e *NotSeededError) Error() string {
	var parts []string
	if e.AmountDay != "" {
		parts = append(parts, "amount of account "+e.AccountID+" on "+e.AmountDay)
	}
	if e.SlotDay != "" {
		parts = append(parts, "batch count on "+e.SlotDay)
	}
	return ErrNotSeeded.Error() + " (rail " + string(e.Rail) + ": " + strings.Join(parts, "; ") + ")"
}

// Is makes errors.Is(err, ErrNotSeeded) hold.
func (e *NotSeededError) Is(target error) bool { return target == ErrNotSeeded }
