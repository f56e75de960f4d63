// Package ops is what every worker binary shares around its engine: the
// JSON slog logger, the /metrics, /healthz and /readyz server on
// METRICS_ADDR, hardened HTTP server timeouts, the consumer group lag
// gauge, and the SIGTERM context that starts a graceful drain. Worker ties
// them together for the consumer-group workers (ingest, dispatcher).
package ops
