package wompi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Error codes Wompi returns in the error envelope's code field.
const (
	// CodeInsufficientBalance: the origin account's balance does not cover
	// the batch [sdk]. The batch may succeed after a top-up.
	CodeInsufficientBalance = "EXC_008"
	// CodeDailyLimit: the daily transactional limit is exhausted [sdk]. The
	// batch may succeed on a later Bogota day.
	CodeDailyLimit = "EXC_017"
	// CodeIdempotencyReused: the idempotency-key was used within 24 h, HTTP
	// 409 [sdk]. The batch was already created: find it by reference.
	CodeIdempotencyReused = "EXC_022"
	// CodeServiceUnavailable: HTTP 503 [sdk].
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
	// CodeDailyBatchLimit: the client's 3,800 batches per Bogota day are used
	// up. [ours]: Wompi documents the cap but no code; the simulator answers
	// it with HTTP 400 and this code.
	CodeDailyBatchLimit = "DAILY_BATCH_LIMIT"
	// CodeUnauthorized: missing or wrong credentials, HTTP 401 [ours].
	CodeUnauthorized = "UNAUTHORIZED"
	// CodeNotFound: unknown payout or transaction, HTTP 404 [ours].
	CodeNotFound = "NOT_FOUND"
	// CodeValidation: a 400 whose message is the list of field errors [ours].
	CodeValidation = "VALIDATION_ERROR"
	// CodeTooManyRequests: HTTP 429 [ours].
	CodeTooManyRequests = "TOO_MANY_REQUESTS"
)

// Sentinel errors. Each is returned (possibly wrapped) before any request is
// sent, so the call had no effect.
var (
	// ErrInvalidIdempotencyKey: the key is not 1–64 of [A-Za-z0-9-];
	// returned by CreatePayout and CreatePayoutFile.
	ErrInvalidIdempotencyKey = errors.New("wompi: invalid idempotency key")
	// ErrInvalidRequest: a required argument is missing (empty id, nil
	// request); returned by any call.
	ErrInvalidRequest = errors.New("wompi: invalid request")
	// ErrInvalidChecksum: a webhook's checksum does not match; returned by
	// VerifyEvent and ParseEvent.
	ErrInvalidChecksum = errors.New("wompi: invalid event checksum")
	// ErrMalformedEvent: a webhook body is not a well-formed event; returned
	// by VerifyEvent and ParseEvent.
	ErrMalformedEvent = errors.New("wompi: malformed event")
	// ErrInconsistentPage: a listing's page came back empty although an
	// earlier page, or its own total, announced more records (a server
	// copy behind); wrapped in a retryable *Error by every listing.
	ErrInconsistentPage = errors.New("wompi: inconsistent page")
)

// Error is a failed call: an HTTP error answer (HTTPStatus != 0) or a
// transport failure (HTTPStatus == 0, Err set). It never contains secrets,
// query strings or request bodies. Its Code and Messages have the personal
// values the call sent (a batch's payees' legal ids, account numbers,
// names, emails and phones: sentValues) masked, then whatever looks like
// an account number, a legal id or an email (maskText); a transaction's
// index ("transactions[12]") stays.
type Error struct {
	// Method and Path name the call, e.g. POST /payouts (no query string).
	Method, Path string
	// HTTPStatus is the answer's status, 0 when no answer was received.
	HTTPStatus int
	// Code is the envelope's code, e.g. EXC_022; may be empty.
	Code string
	// Messages is the envelope's message: one string, or the list a
	// validation 400 carries.
	Messages []string
	// TraceID is meta.trace_id, to quote to Wompi support.
	TraceID string
	// OutcomeUnknown is set when the call was a POST that may have taken
	// effect although it failed: a transport failure after the request may
	// have been sent, or a 5xx. Retry with the SAME idempotency key, or
	// reconcile by reference.
	OutcomeUnknown bool
	// Err is the transport error, with the URL stripped.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("wompi: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	if e.HTTPStatus == 0 {
		if !errors.Is(e.Err, ErrInconsistentPage) {
			b.WriteString("transport: ")
		}
		if e.Err != nil {
			b.WriteString(e.Err.Error())
		}
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
		if e.Code != "" {
			b.WriteByte(' ')
			b.WriteString(e.Code)
		}
		if len(e.Messages) > 0 {
			b.WriteString(": ")
			b.WriteString(strings.Join(e.Messages, "; "))
		}
	}
	if e.OutcomeUnknown {
		b.WriteString(" (outcome unknown)")
	}
	if e.TraceID != "" {
		b.WriteString(" trace_id=")
		b.WriteString(e.TraceID)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether repeating the same call (with the same
// idempotency key) may succeed: true for 5xx, 429 and transport failures
// including timeouts; false for validation and every other 4xx (409 EXC_022
// included: the batch exists), and for a call the caller itself cancelled.
func (e *Error) Retryable() bool {
	if e.HTTPStatus == 0 {
		return e.Err != nil && !errors.Is(e.Err, context.Canceled)
	}
	return e.HTTPStatus >= 500 || e.HTTPStatus == 429
}

// Timeout reports whether the failure was a timeout.
func (e *Error) Timeout() bool {
	if e.HTTPStatus != 0 || e.Err == nil {
		return false
	}
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// HasCode reports whether the error carries the given code.
func (e *Error) HasCode(code string) bool { return e.Code == code }

// AsError returns the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var we *Error
	ok := errors.As(err, &we)
	return we, ok
}

// IsRetryable reports whether err is an *Error whose Retryable is true.
func IsRetryable(err error) bool {
	we, ok := AsError(err)
	return ok && we.Retryable()
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	we, ok := AsError(err)
	return ok && we.Code == code
}

// IsOutcomeUnknown reports whether err is a failed POST that may have been
// applied (see Error.OutcomeUnknown).
func IsOutcomeUnknown(err error) bool {
	we, ok := AsError(err)
	return ok && we.OutcomeUnknown
}

// IsDeferrable reports whether the batch was refused for a reason that may go
// away later without changing it: insufficient balance (EXC_008), the daily
// amount limit (EXC_017) or the daily batch cap (CodeDailyBatchLimit).
func IsDeferrable(err error) bool {
	we, ok := AsError(err)
	if !ok {
		return false
	}
	switch we.Code {
	case CodeInsufficientBalance, CodeDailyLimit, CodeDailyBatchLimit:
		return true
	}
	return false
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	we, ok := AsError(err)
	return ok && we.HTTPStatus == status
}
