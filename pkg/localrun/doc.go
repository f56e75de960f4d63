// Package localrun runs the whole pipeline in one process on embedded
// defaults: an in-process kfake cluster, a Redis (REDIS_URL, else a
// redis-server from PATH, else embedded miniredis), the Wompi simulator,
// the ingest, dispatcher and tracker engines, and a synthetic marketplace
// that publishes payout requests. It ends with a reconciliation of what was
// requested against what Wompi's ledger accepted and what the status topic
// says. cmd/payouts-local is its command; the load run of
// docs/performance.md is one of its modes.
package localrun
