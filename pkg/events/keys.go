package events

import "github.com/wompi-payouts/pipeline/pkg/payout"

// Record keys. Keying by the entity id keeps every event of one request (or
// one batch) in one partition, in order.

// RequestKey is the key of a PayoutRequested record: its requestId.
func RequestKey(r *payout.Request) []byte { return []byte(r.RequestID) }

// BatchKey is the key of a PayoutBatch record: its batchId.
func BatchKey(b *payout.Batch) []byte { return []byte(b.BatchID) }

// StatusChangeKey is the key of a PayoutStatusChanged record: its requestId.
func StatusChangeKey(s *payout.StatusChange) []byte { return []byte(s.RequestID) }

// BatchStatusChangeKey is the key of a BatchStatusChanged record: its batchId.
func BatchStatusChangeKey(s *payout.BatchStatusChange) []byte { return []byte(s.BatchID) }
