// Package smartfastpay is the pipeline's client for SmartFastPay's Colombian
// payouts API: one payee per POST, OAuth2 client-credentials tokens, and
// callbacks signed with an HMAC. It implements rail.SinglePayouts, so the
// dispatcher and the tracker use it through pkg/rail only.
//
// SmartFastPay documents no idempotency. The client therefore never repeats
// a create whose outcome may be unknown: it classifies every failure in the
// seam's classes (rail.OutcomeUnknown for a timeout, a reset or a 5xx after
// the body was sent) and leaves the lookup by our id (Find) and the retry
// policy to the dispatcher. The one repeat it makes itself is after a 401:
// the provider refused our token, so nothing was applied; it fetches a new
// token once and sends the call again (see Client.Create).
//
// Facts are marked [seed] (the seed document), [doc] (the provider's public
// documentation), [sdk] (third-party code, plausible but unconfirmed) and
// [ours] (our decision where nothing is published). Every [ours] decision
// lives in ours.go. The simulator is in the sfptest sub-package; see
// docs/rails/smartfastpay.md.
package smartfastpay
