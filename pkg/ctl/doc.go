// Package ctl is the engine of cmd/payoutsctl, the operator's day-2 tool:
// it answers "what happened to request X?" (Trace), "which batches and
// payouts are stuck?" (Stuck), "how much of today's limits is used?"
// (Budget), "what is my balance at the provider?" (Balance), "what is in
// the dead-letter topic?" (DLQList), and "do the provider's records of a
// day agree with our events?" (Reconcile), reading the pipeline's own
// state: the status topic, the Redis keys the workers keep (through the
// workers' read-only helpers, so the key layouts have one owner) and the
// providers' APIs.
//
// Only DLQReplay writes: it republishes chosen dead letters to the request
// topic, after the safety rules of ReplayHelp (never a copy, never bytes
// that do not decode, never a requestId the pipeline already holds). It is
// configured by the workers' environment variables (KAFKA_BROKERS, TOPIC_*,
// REDIS_URL, REDIS_PREFIX, WOMPI_*, SMARTFASTPAY_*, WEPAYOUT_*, ...) and
// flags. Every answer has a rail column. Personal data (legal ids, account
// numbers, names, emails, phones, PIX keys) is masked unless
// Settings.Reveal is set.
package ctl
