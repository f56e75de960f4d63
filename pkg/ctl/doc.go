// Package ctl is the engine of cmd/payoutsctl, the operator's day-2 tool:
// it answers "what happened to request X?" (Trace), "which batches and
// payouts are stuck?" (Stuck), "how much of today's limits is used?"
// (Budget) and "what is my balance at the provider?" (Balance), reading the
// pipeline's own state: the status topic, the Redis keys the workers keep
// (through the workers' read-only helpers, so the key layouts have one
// owner) and the provider's API.
//
// It only reads. It is configured by the workers' environment variables
// (KAFKA_BROKERS, TOPIC_*, REDIS_URL, REDIS_PREFIX, WOMPI_*, ...) and flags.
// Every answer has a rail column; today only the wompi rail is wired.
// Personal data (legal ids, account numbers, names, emails, phones) is
// masked unless Options.Reveal is set.
package ctl
