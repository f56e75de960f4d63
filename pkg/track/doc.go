// Package track is the engine of cmd/tracker: it turns what the rails
// (Wompi, and the single-payout rails SmartFastPay and WEpayout) say about
// submitted payouts into status events. Signed webhooks (POST
// /webhooks/wompi) and a polling fallback both feed one monotonic path that
// produces PayoutStatusChanged (payouts.status.v1, keyed by requestId) and
// BatchStatusChanged (payouts.batch-status.v1, keyed by batchId).
//
// # API
//
//	w := wompi.NewRail(wc, wompi.RailConfig{EventsSecret: s}) // the tracker knows Wompi as a rail.BatchTracking
//	e, err := track.New(track.Config{Kafka: opts, Codec: codec, Topics: t, Redis: rdb, Prefix: p, Wompi: w})
//	srv := track.NewWebhookServer(":8080", e) // e.Handler() behind ops.NewServer's timeouts
//	go e.RunPoller(ctx)                       // or e.PollOnce(ctx) from a test on a manual clock
//	defer e.Close()
//
// cmd/tracker and the one-command local run use BindConfig and Settings.Run,
// which wire the same engine from env variables and flags, serve the
// metrics listener and drain on SIGTERM.
//
// # Webhooks
//
// Past MaxConcurrentWebhooks in flight, a webhook is answered 503 with
// Retry-After before its body is read. A body over 1 MiB is refused (413),
// invalid JSON too (400). The body is verified and decoded in one strict
// parse (the rail's VerifyWebhook; on Wompi wompi.ParseEvent: header
// X-Event-Checksum, else signature.checksum); a wrong or missing checksum, a body with no
// signature to check, duplicate or case-variant keys, a transaction.updated
// or payout.updated whose signature does not cover its entity's id, status
// and amountInCents, or a property list over the bounds is 401 and
// produces nothing. A validly signed event of an unknown type is logged and
// answered 202.
// transaction.updated maps to the request whose reference the transaction
// carries (the dispatcher's hand-off in pkg/submitted, else Wompi: GET
// /payouts/{id}/transactions/{txId} and GET /payouts/{id}, through the
// rail's Item and GetBatch), with the status the rail maps
// (wompi.TransactionStatus.PayoutStatus on Wompi) and a FAILED or CANCELLED transaction's
// code (D07...) and message as reasonCode and reasonMessage. Its payoutId
// is not signed [doc]: the hand-off must list the transaction under it, or
// Wompi must answer that pair; its signed amount must be the recorded one.
// payout.updated maps to its batch: the hand-off's, else Wompi's
// reference; an unsigned reference or an amount that contradicts them is
// 401 too.
//
// The event is produced synchronously with acks=all (bounded by
// ProduceTimeout) BEFORE the answer: 200 once Kafka has it, or when it was
// already emitted; 503 when Kafka, Redis or Wompi cannot be reached, so
// Wompi retries (3 more times [doc]); the poll is the net under that.
//
// Replays: an old event with a valid signature is accepted, because
// dedupe and the monotonic rule below make a replay a no-op (or, after a
// Redis loss, a re-emission of the same transition with the same eventId).
// Refusing old timestamps would refuse Wompi's own late retries after an
// outage. A timestamp further than FutureSkew ahead of our clock is logged
// and counted (payouts_tracker_webhook_future_timestamps_total) but still
// processed [ours]: the signature is valid, so refusing it would only lose
// a real status; clock skew is the likely cause, and a leaked secret would
// not be stopped by a timestamp check anyway (rotate the secret).
//
// # Statuses only move forward, each transition once
//
// Redis keeps the last-known status of every request
// (P track:req:{requestId}) and batch (P track:batch:{batchId}), one string
// per key with the id as its hash tag (keys left as hashes by an earlier
// version are read, and rewritten as strings on their next transition). On one Redis the transitions of a
// batch or a poll go in one script call per 256 keys; on a Redis Cluster,
// where each key has its own slot, in one call per key (pipelined). One
// Lua CAS admits a transition only if payout.CanTransition
// (CanBatchTransition) allows it from the known status; the allowed-from
// sets are computed from those functions and passed to the script, so
// pkg/payout stays the only authority on the order. A duplicate (same
// status again) or a regression (a late PENDING after APPROVED) emits
// nothing and is answered 200. The CAS also takes a short lease on the key,
// which serialises the transitions of one request so they reach Kafka in
// order, and makes two replicas receiving the same webhook emit it once.
//
// The status is recorded as emitted only after the produce succeeded. If
// the produce fails, the attempt is abandoned: the known status stays what
// it was (a retry emits the event), and the abandoned status keeps
// refusing older ones while it may itself be emitted again, with the same
// eventId.
//
// On one Redis the attempts of a poll page or of a dispatcher gate ticket
// share a token, and are confirmed together by one key
// (P track:done:<token>, with the status TTL) written in the same script
// call that abandons the failed ones, instead of a write per status key;
// each status key records the attempt as it began, and reads as confirmed
// while that key exists. Only a call that ends every attempt of the token
// writes it: while some are still in flight or left to their leases, the
// others are ended key by key.
//
// A lease is held, not merely taken: while its produce runs (or, for the
// dispatcher's gate, while it waits for another attempt's keys) the holder
// renews it every quarter of a lease, at a fixed rate, each renewal given
// up after an eighth. A produce that outlasts ProduceTimeout
// is answered 503, but its attempt is not abandoned then: the record may
// still land, and a freed key would let another replica emit a later
// status that the late record then follows on the topic. The key stays
// held until franz-go settles the record (it fails one only when it is
// known not to be written), and the attempt is then confirmed or
// abandoned. A holder that dies stops renewing and its keys are free one
// lease later; a record failed by the client's close is left to its lease
// the same way. The one case a lease cannot cover is a holder cut off from
// Redis for three renewals in a row while its produce is still pending:
// payouts_tracker_status_leases_lost_total and
// payouts_dispatcher_status_leases_lost_total count the renewals that
// failed or found the key taken over. Both workers refuse a Kafka client
// configured to fail records whose outcome is unknown (franz-go's
// DisableIdempotentWrite, AllowIdempotentProduceCancellation).
//
// eventIds are deterministic: payout.EventID("status", requestId, status,
// transactionId) and payout.EventID("batch", batchId, status, payoutId).
// The same transition always gets the same id, whichever replica or source
// (WEBHOOK, POLL, or the dispatcher for the PENDING its listing read) emits
// it and whether or not Redis remembers it, so consumers dedupe on it.
// previousStatus is the status last emitted before it (by the tracker, or
// SUBMITTED for the dispatcher's PENDING), when it is known. A CANCELLED or FAILED request whose
// payment Wompi receives again under a new transaction id starts a new
// life (its transitions have new ids).
//
// # Redis loss
//
// Redis is a cache here. When it has no status for a key (fresh, flushed,
// expired) and the new status is not final, the tracker first asks Wompi
// for the transaction's (batch's) current status and emits that one if it
// is further along (payout.Beyond: a RETURNED after a PENDING counts, and
// for batches another status of the same rank), so a flush cannot make a
// late PENDING overwrite an APPROVED, or follow a RETURNED. A lost hand-off is rebuilt per event from Wompi, and the
// payout of an event no hand-off maps is put on the polling schedule
// (whatever its status; 503 if that write fails), so that a payout the
// rebuild missed is still polled when its later webhooks are lost. The polling
// schedule (pkg/submitted) is rebuilt by one replica, under a lock, from
// GET /payouts?status=PENDING,PARTIAL_PAYMENT,AFE_ON_HOLD and a listing
// without a status filter (which does not shrink while it is walked) of the
// last 30 days: the payouts not final, and the final ones created (or,
// scheduled, dispersed) within RebuildLookback, so a final status whose
// webhook was lost while Redis was gone is still emitted; and from the
// batch status topic (which the tracker reads for it), of the same 30
// days, the payouts whose last status there is not final, or final within
// RebuildLookback: a batch held longer than RebuildLookback and paid just
// before the loss is listed final, with no update time. A rebuild during which
// Redis lost data again is not marked complete (submitted.MarkReadyAfter),
// and runs again. A replica without a single-payout rail's credentials
// cannot list that rail: the marker records it as unlisted
// (submitted.UnlistedRails), and the next replica that has the rail lists
// it alone, so a mix of replicas (a rolling change of credentials) never
// leaves a rail's payouts off the schedule. The cost of a loss is
// extra Wompi calls and duplicate events with the same eventIds, never a
// lost or a regressed transition. Run Redis with maxmemory-policy
// noeviction: an evicted status key costs a Wompi call, an evicted
// schedule entry costs polling of that payout until a rebuild.
//
// A loss also wipes the leases of attempts whose events are still being
// produced (a broker failing over can hold a produce for seconds). An
// emitter that found such a key empty could put a later status on the
// topic before the pending one lands. So the epoch marker carries its
// creation time, and for LossGrace after it (DefaultLossGrace, 5 s) no
// status is emitted on a key that holds none: the attempt waits and
// retries. Meanwhile every holder's renewal (at most every second) finds its
// key missing and writes its attempt back, so the key is busy until the
// pending event is confirmed. Only a marker written by a process that had
// seen one before (so the marker went missing: a loss) starts the grace; a
// process that never saw one cannot tell a first start from a loss and
// writes a marker that starts none (the dispatcher and the tracker write it
// when they start). If such a process is the first to notice a loss, the
// holders' write-back is the only guard.
// The begin scripts answer busy for such a key without writing to it; only
// the first begin after a loss, before the new marker is seen, is granted
// and then released by checkEpoch. A loss that keeps the marker is not
// seen by the grace: a failover to a replica that missed the last writes
// (Sentinel, Cluster), or on a Cluster a master without the marker losing
// its data. There the holders' write-back within a second is the only
// guard of the attempts in flight. A status read before such a loss is
// still told apart, whether its key is empty or holds an older status (the
// replica may have missed a later one): the since it was read under
// carries the stamp (run id, and the replication id a promotion set) of
// the Redis process, or on a Cluster of every master (with the tokens of
// the master's canary keys, one in each of its first, middle and last
// slot, as that same process answers them: a flush of that master alone
// takes them all, and they are written anew with new tokens; a reshard
// moves a canary with its slot, another master answers it then and it no
// longer counts, while the others still match; a count of flushes in INFO
// commandstats, used before, is zeroed by CONFIG RESETSTAT), and
// checkEpoch
// compares it for every verified, non-final status it grants, with the
// stamp of the one Redis (read in the marker's call) or of each master its
// keys are on (one call per master, not per key); another stamp (another
// run id, a promotion since, or no canary token in common) makes the read
// a re-read. A master's first replica attaching, or its backlog
// freed after repl-backlog-ttl without one, changes its replication id
// with nothing lost: no promotion set the new one, so the stamp keeps it
// out, and a since that named the id a promotion set still matches
// (sameProcess, as the dispatcher's own check judges it). The dispatcher's gate takes a fresh stamp for each job
// (Gate.Epoch): a re-read there skips the status for good. An unverified status (a webhook's) on a key
// holding an older status is not checked: a provider's retried callback
// can then be emitted again, with its eventId, after a later status.
// The per-process memory of Wompi payouts put on the polling schedule is
// not used on a Cluster, whose schedule master can lose its data alone.
//
// # Polling
//
// RunPoller claims due payouts with submitted.ClaimDue (leased, so replicas
// share the work and never poll one payout at once), reads GET
// /payouts/{id} and every page of /payouts/{id}/transactions, and emits
// what moved (source POLL) through the same path. A payout is polled again
// after a backoff that grows with its age (10 s, 30 s, 1 min, 5 min, 15 min,
// then every 30 min: ACH may take 24 h), at its dispersion time if
// scheduled, and leaves the schedule once the batch is final (TOTAL_PAYMENT,
// REJECTED, AFE_REJECTED) and all its transactions are. A poll whose
// transactions read as the hand-off's digest (PollDigest: those of the
// last complete poll, or of the dispatcher's listing once it emitted every
// PENDING, when the first poll is due 10 s after the hand-off) emits no
// request status.
//
// Two payouts under one batch reference (a POST whose answer was lost,
// then a lookup by reference behind the create, and a second POST) pay
// the same requests twice over, and only the one the dispatcher adopted is
// handed off. A request's failure is emitted only when no other payout of
// the request may still pay: a failure of a transaction no hand-off maps
// is not emitted while the request's status key follows another
// transaction not ended FAILED or CANCELLED, nor while the key's FAILED
// or CANCELLED is of a transaction the lookup by the batch's reference
// lists in another payout (followsOther: that one ended this same life,
// and a second FAILED would follow it), nor, while the key holds no
// status of any transaction, for handOffWait after its payout's
// creation (its POST's answer lost, the dispatcher may still post
// another after a lookup behind; the payout stays polled); a failure
// (FAILED, CANCELLED, REJECTED) of an adopted transaction not emitted yet
// is first checked against Wompi's lookup by the batch's reference
// (FindBatches, and the transactions of any other payout under it: one
// lookup per failure, none per success), and is kept back, the adopted
// payout still polled and the other put on the schedule, while another
// transaction of the request there is paid or not final, or the lookup
// does not list the adopted payout (adoptedTxFailure; counted in
// payouts_tracker_failures_held_total{rail="wompi"}). Emitted, it would
// end the request FAILED while the other one pays, whose APPROVED then
// follows as a new life: the marketplace, which asks again on a FAILED,
// would pay the payee twice. Once the key follows the other transaction,
// the adopted one's failure is dropped; once the other one fails too, it
// is emitted. A transaction that ended before the adopted payout was made
// and was made more than half of DEDUPE_WINDOW before it is an earlier
// life's and does not count. The single-payout rails apply the same rules
// with their lookup by our id (failureOfOther, adoptedFailure).
//
// # Single-payout rails
//
// SmartFastPay and WEpayout pay one payee per payout. The dispatcher hands
// each one off as a pkg/submitted payout with id rail.HandOffID (e.g.
// "wepayout:100001") and one transaction whose id is the provider's.
// Their events carry transactionId = the provider's id, no payoutId, and
// rail = the rail's name, and take the same forward-only path as Wompi's
// (single.go). POST /webhooks/smartfastpay is verified by its HMAC over the
// whole body, then each payout must match the hand-off (our requestId and
// amount), else SmartFastPay's GET; POST /webhooks/wepayout is verified
// against our record (requestId, BRL, the hand-off's amount; WEpayout's
// record without a hand-off), and since its signature covers nothing else
// the status emitted is the one WEpayout answers for the payment, never
// the body's. A webhook for a payout we never handed off and the provider
// does not know is 401. Unknown provider statuses emit nothing (202, or the
// poll keeps the payout) and are counted. The poll routes hand-off ids by
// rail.ParseHandOffID to a GET of the payout. SmartFastPay may refund an
// APPROVED payout (RETURNED): for the status store that APPROVED is not
// settled, so a late APPROVED after a Redis loss is read again rather than
// emitted after the RETURNED. The schedule rebuilt after a Redis loss also
// lists the single payouts not final created within 30 days (or
// RebuildLookback, if longer), and the final ones created within
// RebuildLookback (a final status whose webhook was lost is still
// emitted); one
// whose hand-off was lost is also tracked again when its next webhook
// arrives (resolved through the provider and put back on the schedule
// while not final). A rail without a client
// (not enabled) answers its webhooks 404, and its scheduled payouts are
// rescheduled PollMaxBackoff later with a warning.
//
// # Metrics
//
// payouts_tracker_webhooks_total{result} (every rail),
// _rail_webhooks_total{rail,result}, _rail_transitions_total{rail,kind,source,status},
// _unknown_provider_statuses_total{rail,source}, _webhook_signature_failures_total,
// _transitions_total{kind,source,status}, _regressions_suppressed_total{kind},
// _duplicates_total{kind}, _polls_total{result}, _poll_rebuilds_total,
// _produce_seconds, _webhook_seconds. Logs are JSON (slog) and carry ids,
// statuses and references, never payee data.
package track
