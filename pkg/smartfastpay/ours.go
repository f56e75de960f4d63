package smartfastpay

import (
	"net/http"
	"strings"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// This file holds every decision of ours ([ours]) about SmartFastPay, where
// the provider publishes nothing. Change them here, and in
// docs/rails/smartfastpay.md.

// API paths. The base URL is the host; the paths are the v1 ones of the
// seed [ours: older docs drop the /v1 prefix]. The token path is [doc], the
// balance path [sdk].
const (
	PathToken   = "/oauth2/token"
	PathPayout  = "/v1/payout"  // POST; GET /v1/payout/{id}
	PathPayouts = "/v1/payouts" // GET, the listing
	PathBalance = "/balance"
)

// ListSort is the sort every listing asks for [ours]: ascending ids, so a
// payout created while we walk the pages lands after them instead of
// shifting the pages already read (the documented example, id,desc, would
// show an item twice and skip another).
const ListSort = "id,asc"

// The listing publishes no page metadata: a page shorter than the limit is
// the last one [ours]. MaxPageSize is the documented maximum limit [seed].
const MaxPageSize = 40

// CustomerID is the customer_id sent for a payee [ours]: the marketplace's
// own id of the payee (the request's metadata customerId) when it gave one,
// else the payee's legal id.
func CustomerID(p rail.Payee) string {
	if p.CustomerID != "" {
		return p.CustomerID
	}
	return p.LegalID
}

// MapStatus maps a payout status [seed] to the pipeline's [ours]: pending
// and onhold are PENDING, success APPROVED, failed FAILED, returned and
// refunded RETURNED (a reversal after APPROVED). Any other value maps to ""
// and so never finalises a payout; the client logs and counts it
// (Client.UnknownStatuses).
func MapStatus(providerStatus string) payout.Status {
	switch strings.ToLower(strings.TrimSpace(providerStatus)) {
	case StatusPending, StatusOnHold:
		return payout.StatusPending
	case StatusSuccess:
		return payout.StatusApproved
	case StatusFailed:
		return payout.StatusFailed
	case StatusReturned, StatusRefunded:
		return payout.StatusReturned
	}
	return ""
}

// Provider payout statuses [seed].
const (
	StatusPending  = "pending"
	StatusOnHold   = "onhold"
	StatusSuccess  = "success"
	StatusFailed   = "failed"
	StatusReturned = "returned"
	StatusRefunded = "refunded"
)

// classOf is the class of an HTTP error answer [ours, from the rules in
// pkg/rail]. create tells a POST /v1/payout from a read.
//
// A create:
//   - 5xx: the body was sent and may have been applied: OutcomeUnknown.
//   - 429: OutcomeUnknown too. SmartFastPay publishes no rate limits, so we
//     cannot know that a 429 comes from a layer that refused before the
//     payout service saw the call; a lookup is cheap, a double payment is not.
//   - 408, 425: the server stopped waiting for our request, or found it
//     too early; a proxy may have forwarded the body already, so a lookup
//     decides: OutcomeUnknown (a Permanent ended the payee REJECTED).
//   - 400, 422: the payee as sent was refused: Rejected; but AlreadyExists
//     when the message refuses our transaction id as already used (idTaken).
//   - 401, 403: our credentials (after the one token refresh): Unauthorized.
//   - 404: the endpoint does not exist, a wrong base URL: Unauthorized.
//   - 409: nothing published; if SmartFastPay ever deduplicates, a conflict
//     means a payout with our id exists: AlreadyExists.
//   - any other 4xx: Permanent.
//
// A read:
//   - 5xx, 429: Retryable.
//   - 401, 403, and a 3xx (never followed: rail.NoRedirects): Unauthorized.
//   - 404: Permanent with HTTPStatus 404 for GET /v1/payout/{id} (no such
//     payout). On the listing a 404 is a wrong base URL, never "nothing
//     found": treating it as absence would let Find prove a payout absent
//     against the wrong host, and the dispatcher would pay again.
//   - any other 4xx: Permanent.
func classOf(create, getByID bool, status int) rail.Class {
	switch {
	case status >= 500:
		if create {
			return rail.OutcomeUnknown
		}
		return rail.Retryable
	case status == http.StatusTooManyRequests:
		if create {
			return rail.OutcomeUnknown
		}
		return rail.Retryable
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status >= 300 && status < 400:
		return rail.Unauthorized
	case status == http.StatusNotFound:
		if getByID {
			return rail.Permanent
		}
		return rail.Unauthorized
	case create && (status == http.StatusRequestTimeout || status == http.StatusTooEarly):
		return rail.OutcomeUnknown
	case create && (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity):
		return rail.Rejected
	case create && status == http.StatusConflict:
		return rail.AlreadyExists
	}
	return rail.Permanent
}

// idTaken reports whether the message of a 400 or 422 answered to a create
// refuses our transaction id as already used ("transaction.id has already
// been taken", "duplicate transaction") [ours]: SmartFastPay does not
// publish its answer to a repeated id. Such a refusal means SmartFastPay
// holds a payout under our id: AlreadyExists, which the dispatcher treats
// as an unknown outcome (a lookup after the grace adopts it), never a
// refusal of the payee (rail.RefusedAsTaken).
func idTaken(msg string) bool { return rail.RefusedAsTaken(msg, "transaction", "id") }
