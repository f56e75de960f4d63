package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// produce writes recs with acks=all and waits for every one; it gives up
// waiting only once stop is done (produceSync).
func (e *Engine) produce(ctx, stop context.Context, recs ...*kgo.Record) error {
	_, _, err := e.produceEach(ctx, stop, recs...)
	return err
}

// produceTimeout bounds one produce (produceEach): past it, franz-go fails
// the records it has not sent. Records sent and unanswered are waited for
// until their answer, or until the caller stops (produceSync).
const produceTimeout = 60 * time.Second

// unansweredGrace is how long produceSync still waits once its caller
// stops.
const unansweredGrace = 5 * time.Second

// errUnanswered fails the records of a produce that the brokers had not
// answered when its caller stopped (produceSync). Like franz-go's
// ErrClientClosed, it leaves them perhaps written.
var errUnanswered = errors.New("the brokers did not answer before the worker stopped; the records are perhaps written")

// perhapsWritten reports whether a produce's error leaves its records
// perhaps written: failed without an answer from the brokers.
func perhapsWritten(err error) bool {
	return errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, errUnanswered)
}

// produceSync is the client's ProduceSync, except that it stops waiting
// unansweredGrace after stop is done (a drain, a revoke, the engine's
// close; nil: never), each record then failed with errUnanswered, and late
// gives the records' real results once franz-go has them.
//
// franz-go fails a record whose context ends only while the record is not
// in flight: an idempotent producer never fails a record it sent and got
// no answer for (its sequence number may be at the broker), until an
// answer comes or the client closes. Waiting for that, a worker held up
// its drain, a revoke (whose callback waits for the worker) and so the
// client's Close, which alone would have failed the record: the process
// hung while a broker did not answer. A running worker still waits: were
// it to give up and try the batch again, its first records could land
// after the second try's, and after later statuses. The records given up
// stay with franz-go and must not be reused; what they guard (the status
// keys, the batch's lease) stays held until late has their results
// (produceGatedThen, job.holdLease).
func (e *Engine) produceSync(ctx, stop context.Context, recs ...*kgo.Record) (res kgo.ProduceResults, late *lateResults) {
	l := &lateResults{done: make(chan struct{})}
	go func() {
		l.res = e.cl.ProduceSync(ctx, recs...)
		close(l.done)
	}()
	var stopped <-chan struct{}
	if stop != nil {
		stopped = stop.Done()
	}
	select {
	case <-l.done:
		return l.res, nil
	case <-stopped:
	}
	grace := time.NewTimer(unansweredGrace)
	defer grace.Stop()
	select {
	case <-l.done:
		return l.res, nil
	case <-grace.C:
	}
	e.m.awaited.Inc()
	e.m.unanswered.Add(float64(len(recs)))
	e.settling.Go(func() {
		<-l.done
		e.m.awaited.Dec()
	})
	res = make(kgo.ProduceResults, len(recs))
	for i, r := range recs {
		res[i] = kgo.ProduceResult{Record: r, Err: errUnanswered}
	}
	return res, l
}

// lateResults are the real results of a produce given up unanswered
// (produceSync): done is closed once franz-go has them, in res.
type lateResults struct {
	done chan struct{}
	res  kgo.ProduceResults
}

// wait returns the results once franz-go has them.
func (l *lateResults) wait() kgo.ProduceResults {
	<-l.done
	return l.res
}

// closed reports whether the client's close failed any of the records:
// perhaps written, they are no longer sent.
func (l *lateResults) closed() bool {
	for _, r := range l.wait() {
		if errors.Is(r.Err, kgo.ErrClientClosed) {
			return true
		}
	}
	return false
}

// produceEach is produce, answering each record's result too (nil when
// every record was written), and, when it gave up waiting, their real
// results to come (produceSync).
func (e *Engine) produceEach(ctx, stop context.Context, recs ...*kgo.Record) (kgo.ProduceResults, *lateResults, error) {
	if len(recs) == 0 {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.produceTimeout)
	defer cancel()
	for _, r := range recs {
		if r.Context != nil && r.Context.Value(waitsLong{}) != nil {
			// The mark stays (waitPartitioner reads it), on this call's
			// context: the record is given up with it.
			r.Context = context.WithValue(ctx, waitsLong{}, true)
		}
	}
	res, late := e.produceSync(ctx, stop, recs...)
	if err := res.FirstErr(); err != nil {
		e.m.retries.WithLabelValues("kafka").Inc()
		// franz-go fails a record only once it is known not to be written,
		// except at the client's close, which fails even records already
		// sent, and produceSync gives up unanswered ones: report that one
		// whichever record failed first, so that the caller treats the
		// whole produce as perhaps written.
		for _, r := range res {
			if perhapsWritten(r.Err) {
				err = r.Err
				break
			}
		}
		return res, late, fmt.Errorf("dispatch: produce: %w", err)
	}
	return nil, nil, nil
}

// maxDLQCut is deadLetter's last cut: value, source headers and key left out.
const maxDLQCut = 3

// deadLetter is the DLQ record of the batch record rec, undecodable for
// err, with cut of its parts left out, in this order: its value (cut 1),
// the source's own headers (2), its key (3). A dead letter above the DLQ
// topic's max.message.bytes (sized to the requests topic's, whose records
// are small, while a batch record is up to a megabyte) is refused on every
// try: sent whole for ever, it held the batch's partition for good. The
// error header says what was left out, and the source-* headers still name
// the record, which stays in its topic until its retention.
func (e *Engine) deadLetter(rec *kgo.Record, err error, cut int) *kgo.Record {
	if cut <= 0 {
		return events.DLQRecord(rec, e.cfg.Topics.RequestsDLQ, err)
	}
	src := &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Headers: rec.Headers}
	left := fmt.Sprintf("value of %d bytes", len(rec.Value))
	if cut >= 2 && len(rec.Headers) > 0 {
		left += fmt.Sprintf(", %d source headers", len(rec.Headers))
		src.Headers = nil
	}
	if cut >= 3 {
		left += fmt.Sprintf(", key of %d bytes", len(rec.Key))
		src.Key = nil
	}
	return events.DLQRecord(src, e.cfg.Topics.RequestsDLQ,
		fmt.Errorf("%w (%s left out: the DLQ topic refused the record as too large)", err, left))
}

// sendDeadLetter sends the dead letter of rec, undecodable or failed for
// err, with send, cutting it (deadLetter) each time the DLQ topic refuses it
// as too large: the same record again would be refused on every try and
// hold the partition for good. Any other error, or a refusal of the last
// cut, is returned for the caller to retry.
func (e *Engine) sendDeadLetter(rec *kgo.Record, err error, send func(*kgo.Record) error, log *slog.Logger) error {
	for cut := 0; ; cut++ {
		serr := send(e.deadLetter(rec, err, cut))
		if serr == nil || !tooLargeForTopic(serr) || cut >= maxDLQCut {
			return serr
		}
		log.Error("dispatch: the DLQ topic refused the dead letter as too large; sending it with less of the record",
			"cut", cut+1, "err", serr)
	}
}

// tooLargeForTopic reports a produce the brokers refused for its size
// (above the topic's max.message.bytes): refused again on every try.
func tooLargeForTopic(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// statusRecord builds one PayoutStatusChanged record (source DISPATCHER).
func (e *Engine) statusRecord(b *payout.Batch, t *payout.Transaction, status payout.Status, reason, msg string,
	payoutID, txID *string, eventID string) (*kgo.Record, error) {
	return e.statusRecordIn(nil, e.now(), b, t, status, reason, msg, payoutID, txID, eventID)
}

// statusRecordIn is statusRecord with the record taken from a (nil: its
// own allocations) and occurredAt at.
func (e *Engine) statusRecordIn(a *recordArena, at time.Time, b *payout.Batch, t *payout.Transaction, status payout.Status,
	reason, msg string, payoutID, txID *string, eventID string) (*kgo.Record, error) {
	sc := a.event()
	*sc = payout.StatusChange{
		EventID: eventID, RequestID: t.RequestID, BatchID: &b.BatchID, PayoutID: payoutID, TransactionID: txID,
		Status: status, ReasonCode: payout.OptString(reason), ReasonMessage: payout.OptString(msg),
		AmountInCents: t.AmountInCents, OriginAccountID: b.OriginAccountID, OccurredAt: at, Source: payout.SourceDispatcher,
		Rail: a.rail(b),
	}
	return e.statusChangeRecordIn(a, sc)
}

// statusChangeRecord encodes sc as a record of the status topic, keyed by
// its requestId.
func (e *Engine) statusChangeRecord(sc *payout.StatusChange) (*kgo.Record, error) {
	return e.statusChangeRecordIn(nil, sc)
}

// statusChangeRecordIn is statusChangeRecord with the record, its key and
// its value taken from a (nil: allocated apart).
func (e *Engine) statusChangeRecordIn(a *recordArena, sc *payout.StatusChange) (*kgo.Record, error) {
	if a == nil {
		v, err := e.cfg.Codec.AppendStatusChange(nil, sc)
		if err != nil {
			return nil, fmt.Errorf("dispatch: encode status: %w", err)
		}
		return &kgo.Record{Topic: e.cfg.Topics.Status, Key: []byte(sc.RequestID), Value: v}, nil
	}
	from := len(a.buf)
	buf, err := e.cfg.Codec.AppendStatusChange(a.buf, sc)
	if err != nil {
		return nil, fmt.Errorf("dispatch: encode status: %w", err)
	}
	buf = append(buf, sc.RequestID...)
	a.buf = buf
	mid, end := len(buf)-len(sc.RequestID), len(buf)
	r := a.next()
	*r = kgo.Record{Topic: e.cfg.Topics.Status, Key: buf[mid:end:end], Value: buf[from:mid:mid], Timestamp: sc.OccurredAt}
	return r, nil
}

// recordArena holds the status records of one batch together: the records
// in one array, their keys and values in one buffer (appended to, never
// written over: a record keeps the bytes it was given even when the buffer
// grows into a new array). A batch of n requests then costs a few
// allocations instead of several per event. The records' timestamps are
// their events' occurredAt, so franz-go reads no clock per record.
type recordArena struct {
	recs []kgo.Record
	buf  []byte

	// sc is the event being encoded (its encoding copies what it reads),
	// and prev and wompi the values its pointers name, so that building
	// an event allocates nothing of its own.
	sc    payout.StatusChange
	prev  payout.Status
	wompi string
	// ids hands out the events' eventIds, a chunk of them per allocation
	// (they are only read while their event is encoded).
	ids payout.EventIDArena
}

// eventID is payout.EventID(parts...), from the arena's ids (a nil arena:
// allocated apart).
func (a *recordArena) eventID(parts ...string) string {
	if a == nil {
		return payout.EventID(parts...)
	}
	return a.ids.EventID(parts...)
}

// event returns the event to fill in: the arena's one, or (a nil arena) a
// new one.
func (a *recordArena) event() *payout.StatusChange {
	if a == nil {
		return new(payout.StatusChange)
	}
	return &a.sc
}

// rail is batchRail, the default rail's name held by the arena.
func (a *recordArena) rail(b *payout.Batch) *string {
	if a == nil || (b.Rail != nil && *b.Rail != "") {
		return batchRail(b)
	}
	a.wompi = string(rail.Wompi)
	return &a.wompi
}

// submitted returns a pointer to SUBMITTED, for a previousStatus.
func (a *recordArena) submitted() *payout.Status {
	if a == nil {
		s := payout.StatusSubmitted
		return &s
	}
	a.prev = payout.StatusSubmitted
	return &a.prev
}

// newRecordArena sizes an arena for n records.
func newRecordArena(n int) *recordArena {
	return &recordArena{recs: make([]kgo.Record, 0, n), buf: make([]byte, 0, n*arenaRecordBytes)}
}

// maxFreeArenas bounds the arenas kept for reuse: one per partition worker
// busy at once is enough.
const maxFreeArenas = 8

// takeArena returns an arena for n records: a recycled one when it is
// large enough, emptied, or a new one.
func (e *Engine) takeArena(n int) *recordArena {
	e.arenasMu.Lock()
	var a *recordArena
	if k := len(e.arenas); k > 0 {
		a, e.arenas = e.arenas[k-1], e.arenas[:k-1]
	}
	e.arenasMu.Unlock()
	if a == nil || cap(a.recs) < n {
		return newRecordArena(n)
	}
	a.recs, a.buf = a.recs[:0], a.buf[:0]
	return a
}

// putArena keeps a for a later batch, which writes over its records and
// bytes. Only for an arena none of whose records the producer may still
// hold: every record given to it finished (its promise ran).
func (e *Engine) putArena(a *recordArena) {
	e.arenasMu.Lock()
	defer e.arenasMu.Unlock()
	if len(e.arenas) < maxFreeArenas {
		e.arenas = append(e.arenas, a)
	}
}

// arenaRecordBytes is about one status event's value and key.
const arenaRecordBytes = 192

// next returns a zero record of the arena; past its size, one allocated
// apart (the array is never grown: a record handed out stays where it is).
func (a *recordArena) next() *kgo.Record {
	if len(a.recs) == cap(a.recs) {
		return new(kgo.Record)
	}
	a.recs = a.recs[:len(a.recs)+1]
	return &a.recs[len(a.recs)-1]
}

// pendingRecord builds the PENDING event of a transaction the payout's
// listing read PENDING (source DISPATCHER, previousStatus SUBMITTED), with
// the eventId the tracker gives a polled PENDING, so that a copy the
// tracker emits too (after a Redis loss) is deduplicated by consumers. The
// record is taken from a (nil: allocated apart).
func (e *Engine) pendingRecord(a *recordArena, at time.Time, b *payout.Batch, t *payout.Transaction, payoutID, txID *string) (*kgo.Record, error) {
	sc := a.event()
	*sc = payout.StatusChange{
		EventID:   a.eventID("status", t.RequestID, string(payout.StatusPending), *txID),
		RequestID: t.RequestID, BatchID: &b.BatchID, PayoutID: payoutID, TransactionID: txID,
		Status: payout.StatusPending, PreviousStatus: a.submitted(),
		AmountInCents: t.AmountInCents, OriginAccountID: b.OriginAccountID, OccurredAt: at, Source: payout.SourceDispatcher,
		Rail: a.rail(b),
	}
	return e.statusChangeRecordIn(a, sc)
}

// dropRecords builds the records of the dropped transactions: REJECTED
// events, and for a republished copy (DUPLICATE_REQUEST) a DLQ record
// instead: a copy never adds an event to the status topic, whose lifecycle
// of that requestId belongs to the copy that is paid.
func (e *Engine) dropRecords(b *payout.Batch, src *kgo.Record, drops []drop, dst []*kgo.Record) ([]*kgo.Record, error) {
	for _, d := range drops {
		t := &b.Transactions[d.idx]
		if d.reason == payout.ReasonDuplicateRequest {
			r, err := e.duplicateRecord(b, t, src)
			if err != nil {
				return nil, err
			}
			dst = append(dst, r)
			continue
		}
		r, err := e.statusRecord(b, t, payout.StatusRejected, string(d.reason), d.message, nil, nil, d.eventID)
		if err != nil {
			return nil, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// HeaderBatchID names, on a DLQ record the dispatcher writes, the batch the
// record came from.
const HeaderBatchID = "batch-id"

// duplicateRecord is the DLQ record of a republished copy: the copy as a
// PayoutRequested (key requestId), with headers error=DUPLICATE_REQUEST,
// the batch record's source topic, partition and offset, and batch-id.
func (e *Engine) duplicateRecord(b *payout.Batch, t *payout.Transaction, src *kgo.Record) (*kgo.Record, error) {
	req := payout.Request{RequestID: t.RequestID, OriginAccountID: b.OriginAccountID, PaymentType: b.PaymentType,
		Beneficiary: t.Beneficiary, AmountInCents: t.AmountInCents, Currency: rail.Currency(railName(b)),
		DispersionDatetime: b.Schedule.DispersionDatetime, Recurring: b.Schedule.Recurring, RequestedAt: t.RequestedAt}
	v, err := e.cfg.Codec.AppendRequest(nil, &req)
	if err != nil {
		return nil, fmt.Errorf("dispatch: encode duplicate copy: %w", err)
	}
	from := &kgo.Record{Topic: e.cfg.Topics.Batches, Partition: -1, Offset: -1}
	if src != nil {
		from = src
	}
	r := events.DLQRecord(&kgo.Record{Topic: from.Topic, Partition: from.Partition, Offset: from.Offset, Key: []byte(t.RequestID), Value: v},
		e.cfg.Topics.RequestsDLQ, errDuplicateRequest)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderBatchID, Value: []byte(b.BatchID)})
	e.m.duplicateRequests.WithLabelValues("dispatcher").Inc()
	return r, nil
}

// errDuplicateRequest is the error header of a republished copy's DLQ
// record: exactly the reason code.
var errDuplicateRequest = errors.New(string(payout.ReasonDuplicateRequest))

// batchStatusRecord builds the BatchStatusChanged record of the batch's
// transactions at positions pos. Its eventId is the tracker's scheme (pkg/track): one transition has one id, whichever
// worker emits it.
func (e *Engine) batchStatusRecord(b *payout.Batch, payoutID *string, st payout.BatchStatus, msg *string, pos []int) (*kgo.Record, error) {
	var total int64
	for _, i := range pos {
		total += b.Transactions[i].AmountInCents
	}
	disc := ""
	if payoutID != nil {
		disc = *payoutID
	}
	bs := payout.BatchStatusChange{
		EventID: payout.EventID("batch", b.BatchID, string(st), disc), BatchID: b.BatchID, PayoutID: payoutID,
		OriginAccountID: b.OriginAccountID, PaymentType: b.PaymentType, Schedule: b.Schedule, Status: st, StatusMessage: msg,
		TotalAmountInCents: total, TransactionCount: int32(len(pos)), OccurredAt: e.now(), Source: payout.SourceDispatcher,
		Rail: batchRail(b),
	}
	v, err := e.cfg.Codec.AppendBatchStatusChange(nil, &bs)
	if err != nil {
		return nil, fmt.Errorf("dispatch: encode batch status: %w", err)
	}
	return &kgo.Record{Topic: e.cfg.Topics.BatchStatus, Key: []byte(b.BatchID), Value: v}, nil
}

var (
	longDigits = regexp.MustCompile(`\d{6,}`)
	emailLike  = regexp.MustCompile(`[^\s@,;:"'<>()\[\]]+@[^\s@,;:"'<>()\[\]]+`)
)

// batchRail is the rail every event of b names: the batch's own, or Wompi
// for a batch written before batches carried one (the only rail then).
func batchRail(b *payout.Batch) *string {
	if b.Rail != nil && *b.Rail != "" {
		return b.Rail
	}
	w := string(rail.Wompi)
	return &w
}

// waitPartitioner places each deferred copy by how long it waits, so that
// a copy due in minutes never queues behind one due the next day: a
// deferred partition is handled in offset order, and its head waits for
// its notBefore with the partition paused. Copies due from the next
// business day on (DAILY_LIMIT, DAILY_BATCH_BUDGET) go to the first half
// of the deferred topic's partitions, the others (a balance, a rail that
// is down, a payout not yet visible) to the second half, each by its key's
// hash as Kafka's default partitioner would (murmur2) within its half. A
// topic of one partition holds both. Every other topic keeps franz-go's
// default partitioner (Partitioner).
type waitPartitioner struct {
	kgo.Partitioner
	deferred string
}

// waitsLong marks, in a record's Context, a deferred copy due the next
// business day or later (waitPartitioner). produceEach puts the mark on
// the context of its call.
type waitsLong struct{}

func (p waitPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic != p.deferred {
		return p.Partitioner.ForTopic(topic)
	}
	return waitClasses{keyed: kgo.StickyKeyPartitioner(nil).ForTopic(topic)}
}

type waitClasses struct{ keyed kgo.TopicPartitioner }

func (waitClasses) RequiresConsistency(*kgo.Record) bool { return true }

func (w waitClasses) Partition(r *kgo.Record, n int) int {
	long := n / 2
	switch {
	case long == 0:
		return w.keyed.Partition(r, n)
	case r.Context != nil && r.Context.Value(waitsLong{}) != nil:
		return w.keyed.Partition(r, long)
	default:
		return long + w.keyed.Partition(r, n-long)
	}
}
