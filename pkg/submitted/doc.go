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
//	Ptx:{<transactionId>}   hash: requestId, batchId, payoutId, amountInCents, originAccountId
//	Ppayout:{<payoutId>}    hash: batchId, originAccountId, paymentType, totalAmountInCents, transactionCount, submittedAt
//	P{poll}                 sorted set: payoutId scored by the next poll time (unix ms)
//	P{poll}:ready           marker: the polling schedule is complete (absent after a Redis loss)
//
// Each mapping is its own hash slot (the id is the hash tag), so the
// mappings spread over a Redis Cluster; Record's pipeline is split per node
// by the cluster client and stays a constant number of round trips.
package submitted
