// Package dispatch is the engine of cmd/dispatcher: it consumes PayoutBatch
// records from payouts.batches.v1 and payouts.batches.deferred.v1 (one
// consumer group, manual commits, read_committed) and posts each batch to
// Wompi's POST /payouts exactly once, respecting the daily limits, the
// shared rate limit and Wompi's health, then reports every outcome to
// payouts.status.v1 and payouts.batch-status.v1. It knows Wompi only
// through the rail seam (rail.BatchRail: batches, health, the day's usage,
// the bank directory, item ids); package wompi's NewRail implements it.
//
// Money safety comes first: a payee paid twice, or a request silently lost,
// is the worst possible bug. Every rule below serves that.
//
// # API
//
//	// w: package wompi's NewRail(client, RailConfig{BanksTTL: time.Hour})
//	e, err := dispatch.New(dispatch.Config{Kafka: opts, Codec: codec, Redis: rdb, Wompi: w})
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
// Rebalances wait while the poll loop routes a poll's records
// (BlockRebalanceOnPoll): records fetched under a session always reach
// that session's workers, never the next worker of a partition that came
// back, which would commit them ahead of an earlier record not yet done.
//
// # State machine of a batch
//
// Each step is a recovery point: a crash anywhere, and a restart, never pays
// twice. Redis keys (P is Config.Prefix). The dispatcher's own keys share
// one hash tag, {dispatch}, so every script runs on Redis Cluster and can
// check the epoch in the same atomic step as its own work:
//
//	P{dispatch}:epoch             hash id, state (rebuilding|ready), layout, startedAt, server, repl, firstStart: the Redis
//	                              epoch, ready only on the Redis process (run id) that stamped it, not promoted since
//	                              (repl: "<id>/<replication id>", store.luaServer, luaSameServer: a failback);
//	                              complete (the id, once the single-payout rails were listed after every POST
//	                              from before the epoch had landed: newPayeeProof, completeEpoch)
//	P{dispatch}:recovery          the recovery lock (SET NX PX, renewed)
//	P{dispatch}:first-start-grace set (PX: the wait skipped) only when a first start skipped the recovery's wait:
//	                              single-payout jobs wait out its life before their first lookup (starts.go)
//	P{dispatch}:batch:<batchId>   hash state, owner, lease (Redis TIME ms), epoch, payoutId, firstPostAt
//	P{dispatch}:req:<requestId>   the batch id that owns the request (the one duplicate index), TTL DedupeWindow;
//	                              or ~<rail> (listedMark): a recovery found it in that single-payout rail's listing
//	P{budget}:<day>               daily budgets, one tag for all days (pkg/ratelimit)
//	rate:{P<rail>-post}        the POST rate limiter, one bucket per rail (pkg/ratelimit)
//	Ppayout:{…}, P{poll}       the hand-off to the tracker (pkg/submitted)
//
// The steps:
//
//  1. Epoch. The batch starts under the current ready epoch. If Redis has
//     none (fresh, flushed, restarted without persistence), or only one
//     stamped by another Redis process (restarted from a snapshot or an
//     fsync that may predate its last writes, or failed over to a replica
//     that may have missed them), one replica recovers (below) while the
//     others wait.
//  2. Claim (one Lua call): no record → "claimed" (fresh); done or rejected →
//     skip and commit; another owner with a live lease → wait and retry, so
//     two workers never post one batch at once; else take it over (resume).
//     The owner is the attempt (replica id + sequence), not the replica, so
//     two partitions of one replica holding the same batch also exclude each
//     other. The lease is renewed every third of its TTL, until the attempt
//     returns, even once its worker is stopped; a lost lease stops the
//     attempt before its next step. An attempt whose records may still land
//     after it returns (a produce given up unanswered by a stopped worker,
//     or failed at the client's close) keeps the lease until they have
//     their results (job.holdLease).
//  3. Banks, then duplicates. Bank codes resolve through the rail's bank
//     directory, a cached GET /banks (an explicit bankId wins); an unknown code drops the transaction with
//     REJECTED UNKNOWN_BANK_ID. Then one Lua call indexes every remaining
//     requestId for this batch (SET NX): one already owned by another batch
//     is dropped with REJECTED DUPLICATE_REQUEST. That event concerns the
//     dropped copy; its eventId is EventID("status", requestId, "DUPLICATE",
//     batchId). A copy repeated inside the batch is dropped the same way. A
//     retry of the same batch keeps its own requests. If nothing is left,
//     the batch is done without a POST.
//  4. Reconcile. Before any POST, if the record was not found at the claim
//     (fresh, or lost with Redis), or was left "claimed" (the attempt that
//     made it ended before its lookup did), or was left "posting", or any
//     earlier attempt sent a POST (firstPostAt is set), or was last claimed
//     under an earlier epoch (claim.stale: it outlived a partial loss, and
//     may be older than the last attempt), the batch is looked up by
//     reference (its batch id). Found: it is posted; skip to 9.
//  5. Budget (pkg/ratelimit, one Lua call), in the budgets of the batch's
//     rail and in its rail's days (Bogota for Wompi): the kept amount
//     against the account's daily limit on the budget day (the dispersion
//     day of a scheduled batch), and one slot of the rail's daily batch cap
//     on today, the day the POST goes out (Wompi counts the cap on the day
//     a batch is sent). Not seeded (a new day, or Redis lost it) → seeded
//     from GET /limits and GET /payouts of the day, then retried. Denied →
//     deferred (8b). If a POST attempt starts on a later day than the slot
//     (retries or waits crossed midnight), the reservation moves to that
//     day first, atomically; no room there → deferred when no POST of the
//     batch went out yet, else posted as reserved (Wompi decides).
//  6. Rate limit (shared GCRA on Redis) and health gate: while GET /health
//     says UNHEALTHY posting pauses (gauge payouts_dispatcher_wompi_unhealthy).
//  7. Post. Each attempt first moves the record to "posting" (Lua: the epoch
//     and the lease must still be ours; firstPostAt is set once), then sends
//     POST /payouts with idempotency key = the batch id. 5xx, 429, timeouts
//     and lost answers are retried with the SAME key, capped exponential
//     backoff with jitter (a partition never skips a batch). Wompi keeps a
//     key 24 h, so no attempt goes out past KeyMaxAge (23 h) from the first
//     POST: the batch is looked up by reference first; found, it is adopted
//     (step 9); proven absent, firstPostAt restarts and the POST goes out.
//     This check sits right before every POST, so no wait (backoff, health
//     gate, rate limit, a weekend of 401s) can outlive the key. 409 EXC_022
//     → the batch exists: look it up by reference for LookupPatience; if it
//     never shows, the batch is moved aside (deferred, PAYOUT_NOT_VISIBLE,
//     reservation kept) and looked up again before its next POST.
//     401/403/404 say nothing about the batch and no retry fixes them: they
//     are counted (payouts_dispatcher_post_blocked_total{code}, alerted),
//     logged as errors and retried at the longest backoff, never REJECTED.
//     Outage: while lookups, the bank table, the health gate or POSTs keep
//     failing, the batch retries for RailPatience (DISPATCHER_RAIL_PATIENCE),
//     then waits on the deferred topic (DEFERRED RAIL_UNAVAILABLE; a minute,
//     doubled per further deferral up to 16) so that the partition's other
//     batches, of every rail, go on. A batch no POST of which went out
//     releases its reservation; one whose POST may have landed keeps it and
//     gates its DEFERRED (the tracker may have emitted a later status); a
//     claim of step 4's first two kinds whose lookup kept failing is marked
//     as posted, so its next attempt looks it up first (step 4).
//  8. Refusals. No refusal is taken at its word: an earlier attempt may
//     have landed, and even this attempt's answer may be to a replay (Go's
//     HTTP transport resends a POST carrying an Idempotency-Key when a
//     reused connection breaks). A lookup by reference decides, and a
//     payout found is adopted (step 9). Only a refusal after a lookup proved
//     the batch absent goes on: (a) 400/422 validation: the refusal is
//     recorded in the batch record (refused:<requestId>), the reservation
//     is released, REJECTED per request with Wompi's code and masked
//     message, state "rejected"; an attempt that reads the record again
//     (those REJECTED perhaps written) ends the batch the same way, never
//     with a POST and without reading the bank directory, whose verdicts
//     the duplicate index holds (job.rejectedBefore; a batch poison ends
//     after a POST is recorded likewise). The requestIds stay in the duplicate index
//     (REJECTED is final: a copy is a duplicate, never a second life). (b) EXC_017,
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
//     with acks=all; state "done"; the offset is committed. The listing is
//     the payout's first poll: a request whose transaction it read PENDING
//     goes through the status gate once, to PENDING, and its PENDING
//     (the tracker's eventId) is produced after its SUBMITTED is written
//     (produceGatedThen). When every transaction read PENDING and every
//     request's PENDING was written, the hand-off gets the listing's poll
//     digest and the tracker's first poll is due 10 s later
//     (track.FirstPollInterval).
//
// Redis work per batch is a constant number of round trips whatever its
// size (about fifteen; see TestConstantRedisRoundTrips).
//
// # Recovery after a Redis loss
//
// Under the recovery lock, the recovering replica first checks that it can
// list every rail a dispatcher on this Kafka has started with (the start
// records name them: missingRails); a replica without a rail's
// credentials releases the lock and waits for one that has them, since its
// rebuild would miss what that rail paid. It then writes a new epoch in
// state "rebuilding", then waits RecoveryGrace (longer than the HTTP
// timeout of one POST attempt) plus a third of the lease (a job learns of
// the loss at its next lease renewal) plus RecoveryGrace - HTTPTimeout
// (the lease fence's slack, below) so that any POST started before the
// loss has landed or failed. A job sends no POST once its lease was last
// confirmed (claim, renewal, or the Wompi attempt's epoch-checked step)
// longer ago than a renewal interval plus RecoveryGrace minus one call
// (leaseFresh): a replica cut off from Redis stops posting before a
// recovery elsewhere stops waiting. A first start (starts.go: this
// process's start record is the only one on TOPIC_DISPATCHER_STARTS, its
// consumer group has never committed an offset, and no rail lists a
// payout) skips the wait for Wompi; single-payout jobs still wait it out
// before their first lookup. It then lists every payout each single-payout
// rail created in the last DedupeWindow (the same span as the index's TTL,
// so a loss never narrows it) and indexes each one's requestId under the
// rail's mark (a batch of another rail drops it as a duplicate; one of the
// same rail takes it over and its lookup adopts the payout), then every
// payout Wompi created in the window and each one's transactions, indexing
// every transaction reference as owned by the payout's reference
// (overwriting: what Wompi holds beats any claim). A requestId that ended
// REJECTED is consumed too, and no rail lists it: a recovery that is not a
// first start then reads payouts.status.v1, every partition, from the
// first record of the last DedupeWindow to the high watermarks taken as it
// starts (read_uncommitted: the dispatcher writes no transactions), and
// indexes the requestId of every REJECTED a dispatcher wrote (source
// DISPATCHER) as its refusal left its entry: the batch id, or the batch id
// + "#r" for an unknown bank ("nx": a listing wins; indexRejected). The
// refused batch read again is still its own (its payees' REJECTED found
// again on the topic); a copy in another batch is a DUPLICATE_REQUEST. A
// failed read fails the recovery (retried). A REJECTED older than the
// topic's retention is not found: with a retention shorter than
// DedupeWindow, a copy of a request refused before it is paid after a
// loss. Only recoveries pay for the read. The recovery then sets the
// epoch "ready". It reads only published fields (the payout's id and reference,
// the transactions' reference, a single payout's our id). Budgets are
// re-seeded lazily from GET /limits; after a partial loss
// that kept a day's budget (still seeded), each Wompi batch listed for the
// day or later whose reservation is gone is booked again (bookWompi).
//
// A batch first written before the loss (its record's time or its
// createdAt before the recovery began, give or take refusalScanSkew;
// job.firstWritten) that the reconcile finds
// absent at Wompi is looked for on the batch status topic before any POST
// (job.rejectedOnTopic): an attempt of the lost state may have refused it,
// its refusal recorded only in what was lost. A batch's REJECTED is
// written, and acknowledged, before its requests' (rejectAs, endPoisoned),
// so a request's REJECTED on the topic implies the batch's. Found, the
// batch is ended the same way again (REJECTED under the same eventIds,
// with WOMPI_REJECTED and the batch's message) and never posted. Such a
// batch whose lookup or bank directory fails past RailPatience is looked
// for before it is deferred (job.unavailable): found, it is retried in
// place, never DEFERRED after its REJECTED, until Wompi's lookup decides.
// A single-payout batch (SmartFastPay, WEpayout) of the same kind is
// looked for on payouts.status.v1 instead, before its reservation and any
// POST (job.payeesRejectedOnTopic): a payee the rail refused before the
// loss has nothing at the rail either, and no listing or lookup tells. One
// read for every payee that may be posted, of the partitions their keys
// (requestIds) are written to, from five minutes before the batch was
// first written on (refusalStatusScanBack), for the REJECTED a dispatcher wrote for
// this batch (its eventId); a failed read fails the attempt, retried,
// nothing posted. A payee found there whose lookup proves it absent (or
// that newPayeeProof lets post without one) is ended REJECTED again under
// the same eventId, with the event's code, and never posted; one found at
// the rail is adopted (the rail's word first); one whose lookup keeps
// failing waits in the deferred copy without a DEFERRED. A payee's
// REJECTED goes through no status gate: produced, it marks the job
// ungated, so a replica whose lease is lost while it is unanswered closes
// its client before a recovery can end (holdLease), and no REJECTED lands
// after the look of the batch's next attempt.
// The epoch's startedAt says when its recovery began; a first start marks its
// epoch firstStart, and its batches are not looked for.
//
// Every step of a batch (claim, dedupe, each move of its record) checks,
// inside its Lua script, that the epoch hash names the epoch the batch
// started under and says "ready"; otherwise nothing is written and the
// batch restarts from step 1. After a FLUSH no worker of a dead epoch
// claims, dedupes against the empty index or posts, and nobody does while
// the new epoch rebuilds. Each POST attempt is preceded by that check, so
// the recovery's grace period covers any POST of the old epoch, and the
// reconcile of step 4 (the record is gone, so the claim is fresh) finds
// anything that did land.
//
// # The rules, for every rail
//
//   - A requestId is paid at most once across accounts within DedupeWindow;
//     the index is one keyspace, and its rebuild covers the same window.
//   - No POST goes out with a key that may have expired; past the limit,
//     reconcile by reference first and adopt what exists.
//   - A POST whose outcome is unknown is repeated only under a key the
//     provider documents as deduplicating, or after a lookup by our own id
//     proves it absent.
//   - No refusal of a POST is taken as a rejection without a lookup by
//     reference (an earlier attempt, or a transport replay of this one, may
//     have landed); a requestId never leaves the index.
//   - Every claim and every dedupe proves, atomically, that the epoch is
//     current and its rebuild done.
//   - Nothing blocks a partition forever: a payout that never becomes
//     visible moves the batch aside, visibly.
//
// # Shutdown
//
// On ctx cancellation (SIGTERM) or a partition revocation each worker stops
// at its next safe point: waits (lease, NotBefore, health, rate limit,
// backoff) are interrupted and the record is left uncommitted for the next
// owner, which resumes it through the claim and the reconcile; a POST in
// flight and the steps after its success finish and commit. A produce the
// brokers do not answer is given up 5 s after the stop (produceSync); its
// batch's lease and status keys stay held until the client has the
// records' results. Then the replica leaves the group.
package dispatch
