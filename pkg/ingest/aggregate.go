package ingest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// CloseReason says why a batch was closed.
type CloseReason string

// The reasons a batch closes.
const (
	CloseCount    CloseReason = "count"    // it holds MaxTransactions requests
	CloseAmount   CloseReason = "amount"   // one more request would pass MaxAmountCents
	CloseBytes    CloseReason = "bytes"    // one more request would pass the batch byte cap (MaxBatchBytes)
	CloseWindow   CloseReason = "window"   // the batching window ended (age)
	ClosePressure CloseReason = "pressure" // pending bytes passed MaxPendingBytes
	CloseShutdown CloseReason = "shutdown" // the worker is draining
)

// openBatch is a batch still taking requests.
type openBatch struct {
	key   string
	batch payout.Batch
	first source // the first request's position: with the key and count it identifies the batch
	bytes int    // encoded request bytes held, for the memory bound
	size  int    // upper bound of the encoded batch, for the byte cap
}

type source struct {
	partition int32
	offset    int64
}

// aggregator groups valid requests into batches. It is not safe for
// concurrent use; one engine loop owns it.
type aggregator struct {
	topic     string
	maxTx     int
	maxAmount int64
	maxBytes  int // byte cap of an encoded batch; see Engine.batchCap
	open      map[string]*openBatch
	keyBuf    []byte
	pending   int // bytes held by open batches
	free      []*openBatch
	idsBuf    []byte // seal's requestIds, kept for the next batch
}

func newAggregator(topic string, maxTx int, maxAmount int64, maxBytes int) *aggregator {
	return &aggregator{topic: topic, maxTx: maxTx, maxAmount: maxAmount, maxBytes: maxBytes, open: make(map[string]*openBatch)}
}

// groupKey writes the grouping key of r into a.keyBuf: rail, origin
// account, payment type and schedule (immediate, or the dispersion minute plus the
// recurrence). Requests that differ in any of these never share a batch.
func (a *aggregator) groupKey(r *payout.Request) []byte {
	k := a.keyBuf[:0]
	if r.Rail != nil {
		k = append(k, *r.Rail...)
	}
	k = append(k, 0)
	k = append(k, r.OriginAccountID...)
	k = append(k, 0)
	k = append(k, r.PaymentType...)
	k = append(k, 0)
	if r.DispersionDatetime != nil {
		// Wompi schedules at minute precision.
		k = strconv.AppendInt(k, r.DispersionDatetime.Unix()/60, 10)
	} else {
		k = append(k, "now"...)
	}
	if rc := r.Recurring; rc != nil {
		k = append(k, 0)
		k = append(k, rc.Interval...)
		k = strconv.AppendInt(k, int64(rc.Months), 10)
		if rc.Description != nil {
			k = append(k, 0)
			k = append(k, *rc.Description...)
		}
	}
	a.keyBuf = k
	return k
}

// add puts a valid request into its group's batch. If the batch cannot take
// it (the count, amount or byte limit), that batch is returned closed and a
// new one holds the request; if the request fills its batch to the count
// limit, the filled batch is returned. The caller produces a returned batch
// and then hands it back with recycle.
//
// A request that would not fit the byte cap even alone in a batch is not
// added: add reports fits false (and closes nothing), and the caller must
// end it some other way (REJECTED).
func (a *aggregator) add(r *payout.Request, partition int32, offset int64, size int) (closed *openBatch, reason CloseReason, fits bool) {
	key := a.groupKey(r)
	ob := a.open[string(key)]
	tx := payout.Transaction{
		RequestID:     r.RequestID,
		Beneficiary:   r.Beneficiary,
		AmountInCents: r.AmountInCents,
		RequestedAt:   r.RequestedAt,
	}
	txSize := events.TransactionSize(&tx)
	sched := payout.ScheduleOf(r)
	if events.BatchOverhead(r.OriginAccountID, &sched)+txSize > a.maxBytes {
		return nil, "", false
	}
	switch {
	case ob == nil:
	case !fitsAmount(ob.batch.TotalAmountInCents, r.AmountInCents, a.maxAmount):
		closed, reason = ob, CloseAmount
	case ob.size+txSize > a.maxBytes:
		closed, reason = ob, CloseBytes
	}
	if closed != nil {
		a.detach(ob)
		ob = nil
	}
	if ob == nil {
		ob = a.newBatch(string(key), r)
		ob.first = source{partition, offset}
	}
	ob.batch.Transactions = append(ob.batch.Transactions, tx)
	ob.batch.TotalAmountInCents += r.AmountInCents
	ob.bytes += size
	ob.size += txSize
	a.pending += size
	if closed == nil && len(ob.batch.Transactions) >= a.maxTx {
		closed, reason = ob, CloseCount
		a.detach(ob)
	}
	return closed, reason, true
}

func (a *aggregator) newBatch(key string, r *payout.Request) *openBatch {
	var ob *openBatch
	if n := len(a.free); n > 0 {
		ob, a.free = a.free[n-1], a.free[:n-1]
	} else {
		ob = &openBatch{}
	}
	ob.key = key
	ob.batch = payout.Batch{
		Rail:            r.Rail,
		OriginAccountID: r.OriginAccountID,
		PaymentType:     r.PaymentType,
		Schedule:        payout.ScheduleOf(r),
		Transactions:    ob.batch.Transactions[:0],
	}
	ob.bytes = 0
	ob.size = events.BatchOverhead(ob.batch.OriginAccountID, &ob.batch.Schedule)
	a.open[key] = ob
	return ob
}

func (a *aggregator) detach(ob *openBatch) {
	delete(a.open, ob.key)
	a.pending -= ob.bytes
}

// drain detaches and returns every open batch.
func (a *aggregator) drain() []*openBatch {
	out := make([]*openBatch, 0, len(a.open))
	for _, ob := range a.open {
		out = append(out, ob)
	}
	for _, ob := range out {
		a.detach(ob)
	}
	return out
}

// recycle returns a produced batch's buffers for reuse. The batch must not
// be referenced afterwards.
func (a *aggregator) recycle(ob *openBatch) {
	clear(ob.batch.Transactions) // drop references to request strings
	ob.batch.Transactions = ob.batch.Transactions[:0]
	a.free = append(a.free, ob)
}

// reset forgets every open batch: the transaction that held them aborted.
func (a *aggregator) reset() {
	for _, ob := range a.drain() {
		a.recycle(ob)
	}
	a.pending = 0
}

// seal fills in the batch's identity and totals. The batch id is
// deterministic: a hash of the grouping key, the topic, the source position
// of the batch's first request, every requestId of the batch in order, and
// the batch's count and total. The same inputs always give the same id, and
// two batches that differ in any request get different ids. Hashing only the
// first request was not enough: after the requests topic is re-created
// (positions start again from 0) while Redis keeps the dispatcher's records
// of finished batches, a batch [o, n] of a request o republished at its old
// position got the id of the finished batch [o, a] whenever the amounts
// matched, and the dispatcher skipped it as already handled: n was lost. A
// batch of the very same requests gets the same id again, which the
// dispatcher rightly skips. The id is 42 characters of [a-z0-9-], valid as a
// Wompi reference and idempotency key.
func (a *aggregator) seal(ob *openBatch, now time.Time) *payout.Batch {
	b := &ob.batch
	b.TransactionCount = int32(len(b.Transactions))
	h := sha256.New()
	h.Write([]byte(ob.key))
	var buf [8 + 4 + 8 + 4 + 8]byte
	binary.BigEndian.PutUint32(buf[8:], uint32(ob.first.partition))
	binary.BigEndian.PutUint64(buf[12:], uint64(ob.first.offset))
	binary.BigEndian.PutUint32(buf[20:], uint32(b.TransactionCount))
	binary.BigEndian.PutUint64(buf[24:], uint64(b.TotalAmountInCents))
	h.Write([]byte(a.topic))
	h.Write(buf[:])
	// Length-prefixed, so that no two lists of ids hash the same bytes; one
	// buffer kept across batches, so no allocation per request.
	ids := a.idsBuf[:0]
	for i := range b.Transactions {
		id := b.Transactions[i].RequestID
		ids = binary.AppendUvarint(ids, uint64(len(id)))
		ids = append(ids, id...)
	}
	h.Write(ids)
	a.idsBuf = ids
	var sum [sha256.Size]byte
	b.BatchID = "b-" + hex.EncodeToString(h.Sum(sum[:0])[:20])
	b.CreatedAt = now
	return b
}

// Window returns the length of the next batching window.
//
// Every window ends by closing each group's open batch, so steady traffic on
// K active groups makes K × 86,400 s / W batches a day per ingest instance.
// To stay inside a daily budget B (BATCH_DAILY_BUDGET, default 3,000 of
// Wompi's 3,800, leaving headroom for batches closed by size, deferrals and
// retries), an instance that owns p of the topic's P partitions takes the
// share B × p / P, and waits
//
//	W = K × 86,400 s / (B × p / P)
//
// clamped to [minWait, maxWindow]. The instances' shares add up to B. The
// dispatcher enforces the hard cap of 3,800 whatever ingest does.
func Window(minWait, maxWindow time.Duration, activeKeys, budget, assigned, total int) time.Duration {
	w := minWait
	if activeKeys > 0 && budget > 0 && assigned > 0 && total > 0 {
		share := float64(budget) * float64(assigned) / float64(total)
		need := time.Duration(float64(activeKeys) * float64(24*time.Hour) / share)
		w = max(w, need)
	}
	return min(w, maxWindow)
}

// fitsAmount reports whether adding amount to total stays within max, an
// int64 overflow counting as not (a wrapped total would pass any check).
func fitsAmount(total, amount, max int64) bool {
	sum, ok := payout.AddCents(total, amount)
	return ok && sum <= max
}
