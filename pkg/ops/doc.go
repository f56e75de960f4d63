// Package ops is what every worker binary shares around its engine: the
// JSON slog logger, the /metrics, /healthz and /readyz server on
// METRICS_ADDR, hardened HTTP server timeouts, and the SIGTERM context that
// starts a graceful drain.
package ops
