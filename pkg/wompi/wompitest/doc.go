// Package wompitest is a stateful, in-memory simulator of Wompi's
// Third-Party Payments (payouts) API, for tests and for the one-command local
// stack (cmd/wompisim serves it on a port).
//
// It follows docs/rails/wompi.md (every fact it enforces is listed in docs/simulator.md): the same endpoints and JSON shapes,
// credentials checked on every call, validation answered with a list of
// messages, idempotency keys that expire after 24 h, balances, per-account
// and per-client limits per Bogota day, the 3,800 batches per day cap, a
// transaction and batch state machine driven by an injectable clock, signed
// webhooks, and fault injection (5xx, latency, lost answers, duplicated,
// reordered and dropped webhooks). Where Wompi publishes nothing, the
// behaviour is ours and documented as [ours] (see docs/simulator.md).
//
// It never rejects a batch whose transaction references were used before:
// it accepts it and records it in an audit ledger (Ledger, Duplicates,
// PaidMoreThanOnce), the oracle for "every payee is paid at most once".
//
// Tests use a ManualClock and call Tick (or Advance) to settle due
// transactions; with the real clock a background loop does it.
package wompitest
