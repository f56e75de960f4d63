// Package sfptest is a stateful, in-memory simulator of SmartFastPay's
// Colombian payouts API, for tests (NewTestServer) and for the local stack
// (cmd/smartfastpaysim serves it on a port).
//
// It follows docs/rails/smartfastpay.md: OAuth2 client-credentials tokens
// that expire on an injectable clock, Bearer checks on every call, the
// documented field validation answered 400, payouts that move pending ->
// onhold -> success | failed, and success -> refunded | returned, by
// deterministic rules on the payee's phone number, signed callbacks to each
// payout's callback URL retried on a non-2xx, and the fault knobs of the
// Wompi simulator (5xx, 429, latency, a create that commits and loses its
// answer, dropped, duplicated and delayed callbacks).
//
// Like the real API as far as anyone knows, it does not deduplicate: a
// second POST with the same transaction.id is accepted and pays a second
// time. Its audit ledger (Ledger, Duplicates, PaidMoreThanOnce, and GET
// /_sim/ledger) counts every payout per transaction.id: the oracle for
// "every payee is paid at most once".
//
// Tests use a ManualClock and call Tick (or Advance) to move payouts; with
// the real clock a background loop does it.
package sfptest
