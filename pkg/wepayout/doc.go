// Package wepayout is the pipeline's client for WEpayout's payouts API
// (Brazil, BRL, PIX or bank account): one payee per POST, a Bearer API key,
// and webhooks signed with a plain SHA-256 over fields that are not all in
// the body.
//
// It implements rail.SinglePayouts for the dispatcher and the tracker:
// Create (POST /v2/payout/payments), Get (GET /v2/payout/payments/{id}),
// Find (the listing filtered by external_id, our requestId) and List (every
// page). Balance reads GET /v2/account/{merchantId}/balance. VerifyWebhook
// checks a webhook against OUR record of the payout (its invoice, currency
// and amount) and parses it; the signature covers nothing else of the body,
// so ConfirmWebhook reads the payment back and returns WEpayout's own
// status, which is what the tracker should emit. Validate checks a request
// against this rail's rules before it is ever batched.
//
// WEpayout documents no idempotency: a second POST with the same invoice is
// a second payment. The client never repeats a POST; every failure is a
// *rail.Error whose Class says whether the POST may have been applied
// (rail.OutcomeUnknown): then it must not be sent again before Find proves
// the payout absent.
//
// Amounts are integer cents everywhere; the API's decimal reais are
// converted with integer arithmetic only (FormatReais, ParseReais, Cents).
// Errors never carry personal data: documents, PIX keys and account numbers
// are masked.
//
// Facts are marked [doc] (WEpayout's documentation), [seed] (our seed text)
// or [ours] (our decision where nothing is published). Every [ours] decision
// is in ours.go. The simulator lives in the weptest sub-package; see
// docs/rails/wepayout.md.
package wepayout
