// Package ingest is the engine of cmd/ingest: it consumes PayoutRequested
// records in a consumer group and turns them into PayoutBatch records,
// exactly once, with Kafka transactions.
//
// Each transaction is one batching window. Inside it the engine polls
// requests, decodes and validates them, and groups the valid ones by origin
// account, payment type and schedule. A group's batch is produced as soon
// as it reaches its count, amount or byte limit (the byte limit keeps every
// batch record below the producer's cap and the batches topic's
// max.message.bytes); when the window ends (its age limit, a memory limit,
// shutdown or a rebalance) every open batch is produced, every record of the
// window is flushed and checked, and only if all were written are the
// batches, the status events (BATCHED, REJECTED), the DLQ records and the
// consumer offsets committed in one transaction. A crash, a rebalance or a
// refused record before the commit aborts all of it, and the requests are
// read again from the last committed offsets: no request is lost and none
// lands in two committed batches.
//
// The window length also keeps the client inside Wompi's 3,800 batches a
// day: see Window.
package ingest
