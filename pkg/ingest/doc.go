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
// One lifecycle per requestId: before any event of a poll is produced, its
// requestIds are claimed in the seen index, a Redis key per requestId
// shared by every instance (see seenIndex), in one pipelined round trip. A
// record whose requestId another record holds is a copy, in this window or
// any earlier one, on this instance or another: it goes to the DLQ with
// error=DUPLICATE_REQUEST and gets no status event. A claim names its record
// (partition and offset), so a window read again after an abort or a crash
// finds its own claims. While the index cannot be reached, windows abort and
// are read again: nothing is batched or rejected unchecked. After a Redis
// loss the index starts empty, and a late copy can be batched again; the
// dispatcher's own duplicate index keeps it from being paid.
//
// The window length also keeps the client inside Wompi's 3,800 batches a
// day: see Window.
package ingest
