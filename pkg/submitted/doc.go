// Package submitted is the hand-off between the dispatcher and the tracker,
// kept in Redis: once Wompi accepts a batch, the dispatcher records which
// Wompi transaction pays which request (Wompi's transaction.updated webhook
// carries the transaction id but no reference), and puts the payout on the
// polling schedule. The tracker reads the mapping and shares the polling.
//
// Redis is a cache here, never the truth: if the mapping is gone the
// tracker asks Wompi (GET /payouts/{id}/transactions/{txId} gives the
// reference, which is our requestId), and the polling schedule is rebuilt
// from GET /payouts?status=PENDING,PARTIAL_PAYMENT when its marker is
// missing.
//
// Keys (P is the configured prefix):
//
//	Ppayout:{<payoutId>}    hash: batchId, originAccountId, paymentType, totalAmountInCents, transactionCount,
//	                        submittedAt, pollDigest, final (set by the tracker once the payout ended),
//	                        and one field per transaction:
//	                        t:<transactionId> = "<amountInCents>|<requestId>"
//	                        or, for a recording of more than 128 transactions,
//	                        at most 64 bucket fields b:<n>, each the entries of
//	                        the transactions whose id hashes to n, appended to
//	                        by a later recording (bucketsFrom); a payout
//	                        recorded twice may hold both layouts
//	P{poll}                 sorted set: payoutId scored by the next poll time (unix ms)
//	P{poll}:ready           marker: the polling schedule is complete,
//	                        "<ms>:<replication id>:<run id>" of the Redis process it
//	                        was written on ("<ms>:<run id>" as earlier versions
//	                        write it; absent after a Redis loss; another process,
//	                        or this one promoted since: Ready is false)
//
// A payout and its transactions are one hash, so Record is three commands
// (HSET, EXPIRE, ZADD; and one script appending the buckets of a large
// payout) whatever the batch size (RecordMany, a single-payout batch's
// hand-off: an HSET and an EXPIRE per payout and one ZADD for them all),
// and a lookup is one HMGET (of both layouts' fields):
// Wompi's transaction events carry the payoutId. Each payout is its own hash
// slot (its id is the hash tag), so payouts spread over a Redis Cluster.
package submitted
