package ratelimit

import "errors"

// Errors returned by this package. Match them with errors.Is; the returned
// errors wrap them with details.
var (
	// ErrNotSeeded is returned by [Budget.Reserve] when the day's budget of
	// the account is not in Redis: the first reservation of the day, or
	// after Redis lost its data. The caller must read what Wompi says is
	// already consumed (GET /limits), call [Budget.Seed], then retry.
	// Nothing was reserved.
	ErrNotSeeded = errors.New("ratelimit: day budget not seeded for this account; rebuild it with Seed from Wompi's GET /limits")

	// ErrReservationConflict is returned by [Budget.Reserve] when the batch
	// id already holds a reservation for a different account or amount.
	// Batch ids are derived from their content, so this is a bug upstream;
	// nothing was changed.
	ErrReservationConflict = errors.New("ratelimit: batch id already holds a different reservation")

	// ErrInvalid is returned for arguments or configuration that can never
	// succeed: an empty id, a malformed day, a non-positive amount, a prefix
	// or key with braces.
	ErrInvalid = errors.New("ratelimit: invalid argument")
)
