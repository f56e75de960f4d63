// Package wompi is the pipeline's client for Wompi's Third-Party Payments
// (payouts) API: typed requests and responses for every endpoint, typed
// errors that say whether a retry may help, and verification of the signed
// webhooks Wompi sends.
//
// It also holds the Wompi rail's rules for a payout request, which ingest
// applies to every request routed to Wompi: Validate (on top of
// payout.ValidateEnvelope: COP, Colombian legal ids, account numbers, names,
// a known bank code or a bankId, a dispersion on a later Bogota day of
// rail.Location(rail.Wompi)) and the Colombian bank-code table
// (ColombianBanks, BankByCode).
//
// The dispatcher and the tracker know Wompi only through the rail seam:
// Rail (NewRail) is Wompi's rail.BatchRail and rail.BatchTracking over a
// *Client, and passes the conformance suites of pkg/rail/railtest. Through
// it the dispatcher creates batches (POST /payouts) with an idempotency key
// derived from the batch id and reconciles by reference after a lost
// response; the tracker verifies webhooks (ParseEvent) and polls batches and
// transactions.
//
// Facts about the API are marked in comments as [doc] (Wompi's documentation),
// [sdk] (a third-party SDK, plausible but unconfirmed) or [ours] (our own
// decision where nothing is published); see docs/rails/wompi.md.
//
// Rail (NewRail) puts the client behind the rail seam: it implements
// rail.BatchPayouts, and every *Error has a rail class (Error.RailClass,
// read by rail.ClassOf). It passes railtest.RunBatchPayouts against the
// simulator.
//
// The client never repeats a POST: it classifies every failure
// (Error.Retryable, IsRetryable, IsOutcomeUnknown) and leaves the retry policy
// to the caller, which must reuse the same idempotency key. Reads are
// repeated only when Config.ReadRetries asks for it, page by page for the
// listings. The local simulator of the API lives in the wompitest
// sub-package.
package wompi
