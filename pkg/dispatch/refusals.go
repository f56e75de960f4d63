package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// refusalScanSkew is how far the clock that stamped a batch's record and
// its createdAt (ingest's host, or the dispatcher's that wrote a deferred
// copy) may be ahead of the recovering dispatcher's (readBeforeTheLoss).
const refusalScanSkew = 30 * time.Second

// refusalScanBack is how much earlier than the batch was first written
// rejectedOnTopic starts: the clock that stamped its REJECTED (a
// dispatcher's) may be behind ingest's. Generous: the topic holds a few
// events per batch.
const refusalScanBack = time.Hour

// refusalStatusScanBack is refusalScanBack for the status topic
// (payeesRejectedOnTopic), which holds several events per payee: an hour
// of them at a high rate may not read within RefusalLookLimit, and the
// batch would wait for good. Ten times refusalScanSkew, the clock skew the
// recovery allows for.
const refusalStatusScanBack = 5 * time.Minute

// readBeforeTheLoss reports whether the job's epoch began after a loss of
// our state, and the batch was first written before that: an attempt of
// the lost state may have read it.
func (j *job) readBeforeTheLoss() bool {
	return !j.epochBegan.IsZero() && j.src != nil && j.firstWritten().Before(j.epochBegan.Add(j.e.scanSkew))
}

// refusalMayBeLost reports whether a refusal an earlier attempt recorded in
// the batch's record may be gone with it, its REJECTED on the topics: the
// batch was read before a loss of our state (readBeforeTheLoss), or the
// claim is fresh while the index says an earlier attempt ran, or Redis may
// evict (the record evicted, its index entries perhaps too), while no
// epoch changed. Wompi's batches (rejectedOnTopic) and the single-payout
// rails' (payeesRejectedOnTopic) both look then.
func (j *job) refusalMayBeLost(c claim) bool {
	return j.readBeforeTheLoss() || (j.src != nil && c.code == "fresh" && (j.indexedBefore || j.e.mayEvict.Load()))
}

// firstWritten is when the batch was first written: its record's time, or
// the batch's createdAt when earlier. A deferred copy is written anew,
// and carries the batch's createdAt: a copy an attempt after the loss
// deferred (Wompi down, before any look) is still looked for.
func (j *job) firstWritten() time.Time {
	t := j.src.Timestamp
	if c := j.b.CreatedAt; !c.IsZero() && c.Before(t) {
		t = c
	}
	return t
}

// rejectedOnTopic looks on the batch status topic, from when the batch was
// first written on, for the batch's REJECTED from a dispatcher: an attempt before
// a Redis loss refused or failed the batch (reject, poison), and the
// refusal recorded in the batch's record was lost with it. rejectAs and
// endPoisoned write the batch's REJECTED, and have it acknowledged, before
// any request's, so a request's REJECTED on the status topic implies it.
// The refusal's code is not on that event: the requests' REJECTED are
// emitted again as WOMPI_REJECTED with its message, under their eventIds.
func (j *job) rejectedOnTopic() (refusal, bool, error) {
	e, b := j.e, j.b
	ctx, cancel := context.WithTimeout(j.soft, e.refusalLimit)
	defer cancel()
	topic := e.cfg.Topics.BatchStatus
	parts, err := e.partitions(ctx, topic, "TOPIC_BATCH_STATUS")
	if err != nil {
		e.m.refusalScans.WithLabelValues("error").Inc()
		return refusal{}, false, err
	}
	found := map[string]refusal{}
	visit := func(rec *kgo.Record) error {
		if e.lookVisit != nil {
			if err := e.lookVisit(); err != nil {
				return err
			}
		}
		var bs payout.BatchStatusChange
		if err := e.cfg.Codec.DecodeBatchStatusChange(rec.Value, &bs); err != nil {
			if events.Permanent(err) {
				return nil // not an event of ours: not this batch's REJECTED
			}
			// The schema registry did not answer: the record may be
			// the REJECTED, and is read again with the batch.
			return fmt.Errorf("decode a status of the batch at offset %d: %w", rec.Offset, err)
		}
		if bs.BatchID == b.BatchID && bs.Status == payout.BatchRejected && bs.Source == payout.SourceDispatcher {
			found[b.BatchID] = newRefusal(string(payout.ReasonWompiRejected), deref(bs.StatusMessage), false)
		}
		return nil
	}
	scan := func(id string, after map[int32]int64) (events.ScanStats, error) {
		clear(found)
		return events.ScanFromAfter(ctx, e.readOpts(), topic, parts, j.firstWritten().Add(-refusalScanBack), id, after,
			[]byte(b.BatchID), visit)
	}
	if _, err := j.resumableLook(topic, []string{b.BatchID}, "", nil, found, scan); err != nil {
		e.m.refusalScans.WithLabelValues("error").Inc()
		return refusal{}, false, fmt.Errorf("dispatch: read the batch's statuses on %s (TOPIC_BATCH_STATUS), which a batch written before a Redis loss needs before any POST: %w", topic, err)
	}
	r, ok := found[b.BatchID]
	e.m.refusalScans.WithLabelValues(strconv.FormatBool(ok)).Inc()
	return r, ok, nil
}

// payeesRejectedOnTopic is rejectedOnTopic for a single-payout batch: it
// looks on the status topic, from when the batch was first written on,
// for the REJECTED a dispatcher wrote for any of the payees ids of this
// batch (its eventId, EventID("status", requestId, "REJECTED", batchId):
// the rail's refusal, finishSingle; or the batch's poison, endPoisoned),
// in one read of the partitions their keys are written to (statusKeyPartitions),
// up to their high watermarks (events.ScanFromKeys): ingest writes this
// topic in transactions, and one left open would hide a REJECTED written
// after its first record from a read up to the last stable offset.
// An attempt before a Redis loss may have had the payee refused, and the
// refusal recorded in the batch's record was lost with it; the rail
// created nothing for it, so neither the recovery's listing nor a lookup
// by our id tells. It returns the refusals found, by requestId, with the
// event's code and message, to be emitted again under the same eventId.
// A deferred copy whose attempt looked already (headerStatusLooked) is
// read from the offsets that look reached, not from its first write.
func (j *job) payeesRejectedOnTopic(ids []string) (map[string]refusal, error) {
	e, b := j.e, j.b
	ctx, cancel := context.WithTimeout(j.soft, e.refusalLimit)
	defer cancel()
	topic := e.cfg.Topics.Status
	parts, err := e.partitions(ctx, topic, "TOPIC_STATUS")
	if err != nil {
		e.m.refusalScans.WithLabelValues("error").Inc()
		return nil, err
	}
	want := make(map[string]string, len(ids)) // requestId -> the eventId of its REJECTED
	keys := make([][]byte, 0, len(ids))
	var read []int32
	for _, id := range ids {
		want[id] = payout.EventID("status", id, string(payout.StatusRejected), b.BatchID)
		keys = append(keys, []byte(id))
		for _, p := range statusKeyPartitions(topic, []byte(id), len(parts)) {
			if !slices.Contains(read, p) {
				read = append(read, p)
			}
		}
	}
	slices.Sort(read)
	found := map[string]refusal{}
	visit := j.visitStatus(want, found)
	scan := func(id string, after map[int32]int64) (events.ScanStats, error) {
		clear(found)
		return events.ScanFromKeysAfter(ctx, e.readOpts(), topic, read, j.firstWritten().Add(-refusalStatusScanBack), id, after, keys, visit)
	}
	id, after := j.lookedBefore(topic)
	st, err := j.resumableLook(topic, ids, id, after, found, scan)
	if err != nil {
		e.m.refusalScans.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("dispatch: read the payees' statuses on %s (TOPIC_STATUS), which a single-payout batch written before a Redis loss needs before any POST: %w", topic, err)
	}
	if e.statusLooked != nil {
		e.statusLooked(st.Records)
	}
	span := newLookSpan(topic, st.TopicID, st.Ends, ids)
	j.looked = &span
	e.m.refusalScans.WithLabelValues(strconv.FormatBool(len(found) > 0)).Inc()
	return found, nil
}

// lookProgress is how far a look for an earlier refusal (rejectedOnTopic,
// payeesRejectedOnTopic) read before it stopped short: RefusalLookLimit
// ran out (a status topic read from days back), or a record could not be
// decoded yet. The worker retries the batch in place, from the same
// record, and that retry's look resumes there: each try reads on, and the
// look ends after a few instead of starting over each time, its
// partition held for good. A look that stopped short proves nothing: the
// retry never posts before its own look reached the topic's end. Kept in
// memory, one per partition being worked: a restart, or the batch read
// from another record, looks from the start again.
type lookProgress struct {
	// lookSpan: what the look read, ends where each partition stopped
	// (none: the look starts over, restartLook).
	lookSpan
	src *kgo.Record // the batch's record, retried in place
	// found: the REJECTED read below ends, by key.
	found map[string]refusal
}

// resumableLook runs a look for the earlier refusals of ids on topic:
// scan reads from the offsets it is given, on the log of that id (none:
// from the batch's first write), and fills found, which it clears first.
// The look starts where an earlier try of this record stopped short
// (resumedLook), or else at fromID and fromAfter (a deferred copy's
// offsets, or none). Offsets past the partitions' ends on the same log
// mean records were lost (an unclean leader election): the whole look
// again. What an earlier try found below where this one started is kept
// in found either way: a dispatcher's REJECTED read once is final, even
// if the log lost it since. A look that stops short proves nothing: its
// progress is kept for the retry (keepLook) and its error returned.
func (j *job) resumableLook(topic string, ids []string, fromID string, fromAfter map[int32]int64, found map[string]refusal,
	scan func(id string, after map[int32]int64) (events.ScanStats, error)) (events.ScanStats, error) {
	id, after := fromID, fromAfter
	prog := j.resumedLook(topic, ids)
	if prog != nil {
		id, after = prog.id, prog.ends
	}
	st, err := scan(id, after)
	if errors.Is(err, events.ErrOffsetsAhead) {
		j.log.Warn("dispatch: the offsets a look for an earlier refusal starts from (a deferred copy's, or an earlier try's) are past the topic's end on the same log: looking from the batch's first write",
			"topic", topic, "err", err)
		// Never started from again: should the whole look stop before
		// it knows where it starts (keepLook then keeps nothing), a
		// retry from them once the log has grown past them would skip
		// what was written below them since the loss. The retry looks
		// whole, and what the earlier tries found is kept.
		var kept map[string]refusal
		if prog != nil {
			kept = prog.found
		}
		j.restartLook(topic, st.TopicID, ids, kept)
		st, err = scan("", nil)
	}
	if prog != nil {
		for k, r := range prog.found {
			if _, again := found[k]; !again && slices.Contains(ids, k) {
				found[k] = r
			}
		}
	}
	if err != nil {
		j.keepLook(topic, st.TopicID, ids, st.Reached, found, err)
		return st, err
	}
	j.dropLook()
	return st, nil
}

// resumedLook returns the progress a look of this record on topic kept
// when it stopped short (keepLook), when it looked for each of ids; nil
// otherwise.
func (j *job) resumedLook(topic string, ids []string) *lookProgress {
	e := j.e
	if j.src == nil {
		return nil
	}
	e.looksMu.Lock()
	defer e.looksMu.Unlock()
	p := e.looks[tp{j.src.Topic, j.src.Partition}]
	if p == nil || p.src != j.src || p.topic != topic {
		return nil
	}
	for _, id := range ids {
		if !p.ids[id] {
			return nil
		}
	}
	return p
}

// keepLook keeps, for the retry of this record, how far a look on topic
// (of id) for ids that stopped short (cause) read (reached: its
// ScanStats.Reached), and the refusals found below it (found: those of
// earlier tries too). A look that stopped before it knew where to start
// (no reached) leaves what an earlier try kept.
func (j *job) keepLook(topic, id string, ids []string, reached map[int32]int64, found map[string]refusal, cause error) {
	e := j.e
	if j.src == nil || len(reached) == 0 || id == "" {
		// No id (brokers without topic ids, or the read stopped before
		// it knew it): a resumed read could not tell the log is the same.
		return
	}
	p := &lookProgress{lookSpan: newLookSpan(topic, id, reached, ids), src: j.src, found: maps.Clone(found)}
	e.looksMu.Lock()
	if e.looks == nil {
		e.looks = map[tp]*lookProgress{}
	}
	e.looks[tp{j.src.Topic, j.src.Partition}] = p
	e.looksMu.Unlock()
	j.log.Warn("dispatch: the look for an earlier refusal stopped short: the batch's retry reads on from where it stopped",
		"topic", topic, "cause", cause)
}

// restartLook keeps, for the retry of this record, a look on topic (of
// id) for ids that must start over from the batch's first write (no
// ends: the offsets it would resume from are past the topic's end), and
// the refusals earlier tries found (found): the retry's look is whole,
// and a dispatcher's REJECTED read once is still final.
func (j *job) restartLook(topic, id string, ids []string, found map[string]refusal) {
	e := j.e
	if j.src == nil {
		return
	}
	// No ends: the retry reads from the batch's first write whatever id
	// it is given, so even an unknown one (none) holds.
	p := &lookProgress{lookSpan: newLookSpan(topic, id, nil, ids), src: j.src, found: maps.Clone(found)}
	e.looksMu.Lock()
	defer e.looksMu.Unlock()
	if e.looks == nil {
		e.looks = map[tp]*lookProgress{}
	}
	e.looks[tp{j.src.Topic, j.src.Partition}] = p
}

// dropLook forgets the progress kept for this record: its look ended, or
// must start over.
func (j *job) dropLook() {
	e := j.e
	if j.src == nil {
		return
	}
	e.looksMu.Lock()
	defer e.looksMu.Unlock()
	k := tp{j.src.Topic, j.src.Partition}
	if p := e.looks[k]; p != nil && p.src == j.src {
		delete(e.looks, k)
	}
}

// headerStatusLooked, on a deferred copy of a single-payout batch, names
// the offsets of the status topic up to which an attempt looked for its
// payees' REJECTED (payeesRejectedOnTopic) and found none: "<topic> <topic
// id> <partition>:<offset>,...". The copy's own look starts there (when
// the topic's id is the same: a topic deleted and made again under its
// name is another log, events.ScanFromKeysAfter), not from
// the batch's first write again: a batch deferred for days after a Redis
// loss read every day since from the topic each time, until the read
// outlasted RefusalLookLimit and its partition waited for good. A record
// written after that look is at or past those offsets, so none is missed;
// a copy without the header (an earlier version's) looks from its first
// write.
const headerStatusLooked = "status-looked"

// lookSpan is what a look for earlier refusals read: on topic, the log of
// id (the topic's id, hex; "": the brokers give none), each partition in
// ends up to that offset (excluded), for the REJECTED of each of ids (the
// payees' requestIds, or the batch's id). A whole look of
// payeesRejectedOnTopic proves no REJECTED of those payees below ends
// (job.looked, for the deferred copy's headerStatusLooked); one that
// stopped short (lookProgress) proves nothing, and a retry looking for
// one id more cannot resume it.
type lookSpan struct {
	topic string
	id    string
	ends  map[int32]int64
	ids   map[string]bool
}

// newLookSpan is the span of a look of ids on topic (of id) that read up
// to ends.
func newLookSpan(topic, id string, ends map[int32]int64, ids []string) lookSpan {
	l := lookSpan{topic: topic, id: id, ends: maps.Clone(ends), ids: make(map[string]bool, len(ids))}
	for _, k := range ids {
		l.ids[k] = true
	}
	return l
}

// lookedBefore returns the offsets of topic an earlier attempt's look
// reached, and the topic's id then, from the headerStatusLooked of the
// batch's record; nil when it has none, or one that cannot be read, or
// of another topic, or without the topic's id.
func (j *job) lookedBefore(topic string) (string, map[int32]int64) {
	if j.src == nil {
		return "", nil
	}
	var v []byte
	for _, h := range j.src.Headers {
		if h.Key == headerStatusLooked {
			if v != nil {
				return "", nil // two: trust neither
			}
			v = h.Value
		}
	}
	t, rest, ok := strings.Cut(string(v), " ")
	id, list, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 || t != topic || id == "" || list == "" {
		return "", nil
	}
	after := map[int32]int64{}
	for _, po := range strings.Split(list, ",") {
		pt, ot, ok := strings.Cut(po, ":")
		p, err1 := strconv.ParseInt(pt, 10, 32)
		o, err2 := strconv.ParseInt(ot, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
			return "", nil
		}
		after[int32(p)] = o
	}
	return id, after
}

// lookedHeader is the headerStatusLooked of a copy holding the payees at
// positions wait: this attempt's look, when it covered each of them and
// found none REJECTED. A payee it did not look for (its refusal recorded
// in the batch's record) or found refused (its lookup not ended) may have
// its REJECTED below the offsets: then no header, and the copy looks from
// the batch's first write. So too when the brokers give no topic id.
func (j *job) lookedHeader(wait []int) (kgo.RecordHeader, bool) {
	l := j.looked
	if l == nil || l.id == "" || len(wait) == 0 {
		return kgo.RecordHeader{}, false
	}
	for _, i := range wait {
		rid := j.b.Transactions[i].RequestID
		if _, found := j.refusedOnTopic[rid]; found || !l.ids[rid] {
			return kgo.RecordHeader{}, false
		}
	}
	parts := slices.Sorted(maps.Keys(l.ends))
	v := []byte(l.topic + " " + l.id + " ")
	for k, p := range parts {
		if k > 0 {
			v = append(v, ',')
		}
		v = fmt.Appendf(v, "%d:%d", p, l.ends[p])
	}
	return kgo.RecordHeader{Key: headerStatusLooked, Value: v}, true
}

// visitStatus is payeesRejectedOnTopic's reader of one record: a payee's
// REJECTED for this batch, written by a dispatcher, goes to found.
func (j *job) visitStatus(want map[string]string, found map[string]refusal) func(rec *kgo.Record) error {
	e, b := j.e, j.b
	return func(rec *kgo.Record) error {
		if e.lookVisit != nil {
			if err := e.lookVisit(); err != nil {
				return err
			}
		}
		var sc payout.StatusChange
		if err := e.cfg.Codec.DecodeStatusChange(rec.Value, &sc); err != nil {
			if events.Permanent(err) {
				return nil // not an event of ours: not a payee's REJECTED
			}
			// The schema registry did not answer: the record may be
			// a payee's REJECTED, and is read again with the batch.
			return fmt.Errorf("decode a status of a payee at offset %d/%d: %w", rec.Partition, rec.Offset, err)
		}
		if ev, ok := want[sc.RequestID]; ok && sc.EventID == ev && sc.Status == payout.StatusRejected &&
			sc.Source == payout.SourceDispatcher && sc.BatchID != nil && *sc.BatchID == b.BatchID {
			found[sc.RequestID] = newRefusal(deref(sc.ReasonCode), deref(sc.ReasonMessage), false)
		}
		return nil
	}
}

// statusKeyPartitions returns every partition of topic, now of n
// partitions, a record keyed key may have been written to: the
// dispatcher's producer places a keyed record of the status topic by
// murmur2 of its key, as Kafka's Java client does (engine.go's
// kgo.UniformBytesPartitioner with keys hashed by its default hasher,
// the same as kgo.StickyKeyPartitioner's; only the deferred topic is
// placed otherwise, waitPartitioner). Partitions are only ever added, so
// a record written when the topic had fewer is at the key's partition
// for one of the counts from n down to 1.
func statusKeyPartitions(topic string, key []byte, n int) []int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	var out []int32
	for m := n; m >= 1; m-- {
		if q := int32(p.Partition(&kgo.Record{Topic: topic, Key: key}, m)); !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

// indexRejected is the part of a recovery's rebuild (not a first start's)
// that the rails' listings cannot give: a requestId a dispatcher ended
// REJECTED (its rail refused it, Wompi refused its batch, the batch was
// poisoned, or its bank was unknown) is consumed like a paid one, and its
// rail holds nothing of it. It reads payouts.status.v1, every partition,
// from the first record of the last DEDUPE_WINDOW (and refusalScanSkew
// more) up to the high watermarks taken as it starts, read_uncommitted
// (the dispatcher writes outside transactions: ScanFromKeys says why),
// and indexes the requestId of each REJECTED a dispatcher wrote as that
// refusal's attempt left its entry: the batch id (refusals keep the entry
// dedupe wrote), or the batch id + "#r" for an unknown bank. So the
// refused batch read again is still its own (indexedBefore; its payees'
// REJECTED found again by payeesRejectedOnTopic or rejectedOnTopic), and a
// copy in another batch is a DUPLICATE_REQUEST. Written "nx" after the
// listings: what a rail lists wins. When a requestId was REJECTED in
// several batches, the earliest is kept. A REJECTED older than the topic's
// retention is not found. It runs only in a recovery, before the epoch is
// ready; an error fails the recovery (retried).
func (e *Engine) indexRejected(ctx context.Context, epoch string) (int, error) {
	topic := e.cfg.Topics.Status
	parts, err := e.partitions(ctx, topic, "TOPIC_STATUS")
	if err != nil {
		return 0, err
	}
	type entry struct {
		value string
		at    time.Time
	}
	found := map[string]entry{}
	from := time.Now().Add(-e.cfg.DedupeWindow - refusalScanSkew)
	if _, err := events.ScanFromUncommitted(ctx, e.readOpts(), topic, parts, from, func(rec *kgo.Record) error {
		var sc payout.StatusChange
		if err := e.cfg.Codec.DecodeStatusChange(rec.Value, &sc); err != nil {
			if events.Permanent(err) {
				return nil // not an event of ours
			}
			return fmt.Errorf("decode a status at offset %d/%d: %w", rec.Partition, rec.Offset, err)
		}
		if sc.Status != payout.StatusRejected || sc.Source != payout.SourceDispatcher || sc.BatchID == nil ||
			*sc.BatchID == "" || sc.RequestID == "" {
			return nil
		}
		v := *sc.BatchID
		if sc.EventID == payout.EventID("status", sc.RequestID, "UNKNOWN_BANK", v) {
			v += "#r" // dedupe's entry of a requestId rejected for its bank
		}
		if old, ok := found[sc.RequestID]; !ok || rec.Timestamp.Before(old.at) {
			found[sc.RequestID] = entry{value: v, at: rec.Timestamp}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("dispatch: rebuild: read the REJECTED on %s (TOPIC_STATUS), whose requestIds no rail lists: %w", topic, err)
	}
	w := &indexWriter{st: e.st, epoch: epoch}
	for _, id := range slices.Sorted(maps.Keys(found)) {
		if err := w.set(ctx, id, found[id].value, true); err != nil {
			return 0, err
		}
	}
	if err := w.flush(ctx); err != nil {
		return 0, err
	}
	return len(found), nil
}
