// Package dispatch is the engine of cmd/dispatcher: it consumes PayoutBatch
// records from payouts.batches.v1 and payouts.batches.deferred.v1 (one
// consumer group, manual commits, read_committed) and posts each batch to
// Wompi's POST /payouts exactly once, respecting the daily limits, the
// shared rate limit and Wompi's health, then reports every outcome to
// payouts.status.v1 and payouts.batch-status.v1.
//
// Money safety comes first: a payee paid twice, or a request silently lost,
// is the worst possible bug. Every rule below serves that.
//
// # API
//
//	e, err := dispatch.New(dispatch.Config{Kafka: opts, Codec: codec, Redis: rdb, Wompi: client})
//	err = e.Run(ctx) // until ctx ends; then drains and leaves the group
//
//	set := config.New("dispatcher", os.LookupEnv)
//	st := dispatch.BindConfig(set)            // every env var and flag
//	e, closeDeps, err := st.Engine(ctx, reg, logger)
//
// # Partitions
//
// Each assigned partition has its own goroutine: its records are handled
// one at a time in offset order, partitions concurrently. A record's offset
// is committed only after its outcome is durable (events produced with
// acks=all, Redis state written). A partition whose worker holds too many
// fetched records, or whose head record is a deferred batch not yet due (its
// NotBefore, read on the injected clock), stops fetching (PauseFetchPartitions)
// until it can go on; a not-due record is never committed early.
//
// # State machine of a batch
//
// Each step is a recovery point: a crash anywhere, and a restart, never pays
// twice. Redis keys (P is Config.Prefix; {acct} is the origin account's hash
// tag, so every multi-key script runs on Redis Cluster):
//
//	P{dispatch}:epoch          hash id, state (rebuilding|ready), startedAt: the Redis epoch
//	P{dispatch}:recovery       the recovery lock (SET NX PX, renewed)
//	P{acct}:epoch              the epoch id the account's keys belong to
//	P{acct}:batch:<batchId>    hash state, owner, lease (Redis TIME ms), epoch, payoutId, firstPostAt
//	P{acct}:req:<requestId>    the batch id that owns the request (duplicate index), TTL 30 days
//	P{budget:<day>}            daily budgets (pkg/ratelimit)
//	rate:{P wompi-post}        the POST rate limiter (pkg/ratelimit)
//	Ppayout:{…}, P{poll}       the hand-off to the tracker (pkg/submitted)
//
// The steps:
//
//  1. Epoch. The batch starts under the current ready epoch. If Redis has
//     none (fresh, flushed, restarted without persistence), one replica
//     recovers (below) while the others wait.
//  2. Claim (one Lua call): no record → "claimed" (fresh); done or rejected →
//     skip and commit; another owner with a live lease → wait and retry, so
//     two workers never post one batch at once; else take it over (resume).
//     The owner is the attempt (replica id + sequence), not the replica, so
//     two partitions of one replica holding the same batch also exclude each
//     other. The lease is renewed every third of its TTL; a lost lease stops
//     the attempt before its next step.
//  3. Banks, then duplicates. Bank codes resolve through a cached GET /banks
//     (an explicit bankId wins); an unknown code drops the transaction with
//     REJECTED UNKNOWN_BANK_ID. Then one Lua call indexes every remaining
//     requestId for this batch (SET NX): one already owned by another batch
//     is dropped with REJECTED DUPLICATE_REQUEST. That event concerns the
//     dropped copy; its eventId is EventID("status", requestId, "DUPLICATE",
//     batchId). A copy repeated inside the batch is dropped the same way. A
//     retry of the same batch keeps its own requests. If nothing is left,
//     the batch is done without a POST.
//  4. Reconcile. Before any POST, if the record was not found at the claim
//     (fresh, or lost with Redis), or was left "posting", or its first POST
//     may be older than 23 h (Wompi forgets a key after 24 h), the batch is
//     looked up by reference (its batch id). Found: it is posted; skip to 9.
//  5. Budget (pkg/ratelimit, one Lua call): the kept amount against the
//     account's Bogota-day limit and one slot of the client's daily batch
//     cap, on Schedule.BudgetDay. Not seeded (a new day, or Redis lost it) →
//     seeded from GET /limits, then retried. Denied → deferred (8b).
//  6. Rate limit (shared GCRA on Redis) and health gate: while GET /health
//     says UNHEALTHY posting pauses (gauge payouts_dispatcher_wompi_unhealthy).
//  7. Post. Each attempt first moves the record to "posting" (Lua: the epoch
//     and the lease must still be ours; firstPostAt is set once), then sends
//     POST /payouts with idempotency key = the batch id. 5xx, 429, timeouts
//     and lost answers are retried with the SAME key, capped exponential
//     backoff with jitter, forever (a partition never skips a batch). 409
//     EXC_022 → the batch exists: look it up by reference until visible.
//     401/403/404 say nothing about the batch: retried, never REJECTED.
//  8. Refusals. (a) 400/422 validation: the reservation is released,
//     REJECTED per request with Wompi's code and masked message, the
//     requests leave the duplicate index, state "rejected". (b) EXC_017,
//     DAILY_BATCH_LIMIT or our budget denial → next Bogota day; EXC_008 →
//     now + DeferBalanceRetry: the reservation is released (when Wompi
//     refused), state "deferred", and the batch (kept transactions,
//     Attempt+1, NotBefore) is produced to the deferred topic with DEFERRED
//     per request (eventId includes the attempt), acks=all, before the source
//     offset is committed. A deferred record produced twice is harmless.
//  9. Success: state "posted" with the payoutId; the payout's transactions
//     are listed (all pages) to map reference (= requestId) to transaction
//     id; the hand-off is stored (submitted.Store.Record, one pipeline);
//     SUBMITTED per request (eventId EventID("status", requestId,
//     "SUBMITTED", batchId)) and one BatchStatusChanged PENDING are produced
//     with acks=all; state "done"; the offset is committed.
//
// Redis work per batch is a constant number of round trips whatever its
// size (about ten; see TestConstantRedisRoundTrips).
//
// # Recovery after a Redis loss
//
// Under the recovery lock, the recovering replica writes a new epoch in
// state "rebuilding", then waits RecoveryGrace (longer than the HTTP
// timeout of one POST attempt) so that any POST started before the loss has
// landed or failed. It then lists every payout Wompi created in the last
// DedupeLookback (72 h) and each one's transactions, and indexes every
// transaction reference as owned by the payout's reference (overwriting:
// what Wompi holds beats any claim), marks the accounts it saw with the new
// epoch, and sets the epoch "ready". Budgets are re-seeded lazily from GET
// /limits.
//
// Every later step of a batch checks, inside its Lua script, that the
// account's epoch marker still equals the epoch the batch started under and
// that the lease is still its own; otherwise the batch restarts from step 1.
// In particular each POST attempt is preceded by that check, so after a
// FLUSH no stale worker posts without the new epoch's recovery having waited
// for it, and the reconcile of step 4 (the record is gone, so the claim is
// fresh) finds anything that did land. An account first seen in an epoch
// gets its marker after the worker has checked that the epoch is current,
// and checks it again after writing it.
//
// Limits of the recovery: a requestId paid more than DedupeLookback ago is
// not re-indexed; payouts without an accountId (the real API may omit it,
// the simulator fills it [ours]) cannot be placed under their account and
// are counted in payouts_dispatcher_rebuild_skipped_payouts_total.
//
// # Shutdown
//
// On ctx cancellation (SIGTERM) or a partition revocation each worker stops
// at its next safe point: waits (lease, NotBefore, health, rate limit,
// backoff) are interrupted and the record is left uncommitted for the next
// owner, which resumes it through the claim and the reconcile; a POST in
// flight and the steps after its success finish and commit. Then the replica
// leaves the group.
package dispatch
