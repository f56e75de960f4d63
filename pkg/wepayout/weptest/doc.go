// Package weptest is a stateful, in-memory simulator of WEpayout's payouts
// API (Brazil, PIX), for tests and for the one-command local stack
// (cmd/wepayoutsim serves it on a port).
//
// It follows the facts docs/rails/wepayout.md lists: the same endpoints and
// JSON shapes (the create answer's "R$43.34" amount, GET's integer cents),
// the Bearer key checked on every call, validation of the documented
// fields answered 400 {"message": ...}, status ids 1, 2, 7 then 3, 4, 5 or
// 6 by deterministic rules on an injectable clock (Rules), webhooks signed
// as WEpayout signs them and POSTed to each payment's notification_url,
// and fault injection (5xx, 429, latency, a create that commits then loses
// its answer, dropped, duplicated and delayed webhooks).
//
// Like the real API as far as anyone knows, it does not deduplicate: a
// second POST with the same invoice is accepted and pays twice. Its audit
// ledger (Ledger, Duplicates, PaidMoreThanOnce, GET /_sim/ledger) counts
// every acceptance per invoice: the oracle for "every payee is paid at most
// once".
//
// Tests use a ManualClock and call Advance (or Tick); with the real clock a
// background loop moves payments along.
package weptest
