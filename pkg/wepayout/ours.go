package wepayout

import (
	"net/http"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// This file holds every decision of ours [ours] where WEpayout publishes
// nothing, in one place, so that each is easy to find and to change. The
// documented facts [doc]/[seed] live next to the code that uses them.

// AccountTypes maps our accountType (PayoutRequested.beneficiary) to
// WEpayout's account_type [ours]. Any other value is refused by Validate
// (INVALID_ACCOUNT_TYPE) and by Create.
var AccountTypes = map[string]string{
	"CORRIENTE": "checking",
	"AHORROS":   "savings",
}

// SaoPaulo is the rail's business-day zone (daily budgets count in its
// days), the zone of the webhook's updated_at, which carries none, and of
// the listing's created_at_start/created_at_end dates [ours].
var SaoPaulo = rail.Location(rail.WEpayout)

// Reasons of the status mapping [ours]: status 5 (Rejected by compliance)
// ends FAILED with ReasonStatus5; status 6 (Cancelled) ends CANCELLED with
// status_detail.code when the provider gives one (e.g. WE0001), else
// ReasonStatus6.
const (
	ReasonStatus5 = "WEPAYOUT_5"
	ReasonStatus6 = "WEPAYOUT_6"
)

// createTooManyRequests is the class of a 429 answered to a create [ours].
// Nothing says whether WEpayout rate-limits before or after it records the
// payment, so the conservative class applies: the dispatcher looks the
// payout up before any new POST.
const createTooManyRequests = rail.OutcomeUnknown

// externalIDParam: Find looks our requestId up as
// GET /v2/payout/payments?external_id=<requestId>, the invoice we sent
// being the payment's external_id [ours, unconfirmed]. Find also filters
// the answer itself, and fails rather than proving absence when an item
// carries neither invoice nor external_id.
const externalIDParam = "external_id"

// signatureAmount is the amount's text in the webhook signature [ours]: the
// decimal string exactly as Create sent it ("50.34"), which is
// FormatReais(amountInCents). The currency is our record's, "BRL" when the
// record has none.
func signatureAmount(cents int64) string { return FormatReais(cents) }

// numberAmountIsCents: a JSON number without a fraction or exponent in an
// answer is integer cents (GET's shape [seed]); one with a fraction is
// decimal reais (the shape we send) [ours]; a string is formatted reais,
// "R$43.34" (the create answer's shape [doc]).
const numberAmountIsCents = true

// Bank and PIX fields [ours]: a request carries either a pixKey or the bank
// fields (bankCode, branch, accountNumber, accountDigit), never both: with
// both the destination of the money is ambiguous and Validate refuses it
// (PIX_AND_BANK). accountType is always present in PayoutRequested, so it
// alone does not make a request a bank one.

// DefaultPageSize is the listing's per_page when Config.PageSize is zero:
// the documented maximum [doc]. A listing without meta.last_page is read
// until a page is short [ours].
const DefaultPageSize = 100

// webhookTimeLayouts are the forms of updated_at and created_at the client
// accepts: the webhook's zone-less "2024-09-25 15:55:18" [doc], read as
// SaoPaulo [ours], and RFC 3339 with microseconds, as GET answers [seed].
var webhookTimeLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05"}

// unauthorizedOnCreate404: a 404 to a create means a wrong base URL, not a
// bad payee (as rail.Unauthorized says) [ours].
const unauthorizedOnCreate404 = http.StatusNotFound

// invoiceTaken reports whether the message of a 400 or 422 answered to a
// create refuses our invoice as already used [ours]: WEpayout does not
// publish its answer to a duplicate invoice ("The invoice has already been
// taken." is how one reads). Such a refusal means WEpayout holds a payment
// under our invoice: class AlreadyExists, which the dispatcher treats as an
// unknown outcome (a lookup after the grace adopts the payment), never a
// refusal of the payee (rail.RefusedAsTaken).
func invoiceTaken(msg string) bool { return rail.RefusedAsTaken(msg, "invoice") }

// createUnknown408And425: a 408 (the server stopped waiting for our request)
// or a 425 (too early) answered to a create is an unknown outcome, looked
// up before any repeat [ours]: either may come from a proxy that had
// already forwarded the body, and a Permanent ended the payee REJECTED.
const createUnknown408And425 = rail.OutcomeUnknown
