package ctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// HeaderReplayedFrom names, on a request that dlq replay republished, the
// dead letter it came from: "<partition>/<offset>" of the DLQ topic. A
// later replay run finds it on the request topic and refuses to replay
// that dead letter again.
const HeaderReplayedFrom = "replayed-from"

// Error codes of dead letters that the workers do not write as a code:
// ingest's and the dispatcher's decode failures carry the decoder's error
// text, classified here as ingest classifies it for its REJECTED event.
const (
	CodeDuplicateRequest = string(payout.ReasonDuplicateRequest)
	CodeUndecodable      = "UNDECODABLE"
	CodeSchemaNotFound   = "SCHEMA_NOT_FOUND"
)

// errorCode returns the code of a dead letter's error header: its leading
// upper-case code when it has one (DUPLICATE_REQUEST, "DISPATCH_FAILED:
// ..."), else SCHEMA_NOT_FOUND for an unknown writer schema and
// UNDECODABLE for any other decode failure.
func errorCode(h string) string {
	n := 0
	for n < len(h) && (h[n] >= 'A' && h[n] <= 'Z' || h[n] == '_' || n > 0 && h[n] >= '0' && h[n] <= '9') {
		n++
	}
	if n >= 3 && (n == len(h) || h[n] == ':' || h[n] == ' ') {
		return h[:n]
	}
	if strings.Contains(h, events.ErrUnknownSchema.Error()) {
		return CodeSchemaNotFound
	}
	return CodeUndecodable
}

// DeadLetter is one record of the requests DLQ topic, personal data masked
// unless --reveal.
type DeadLetter struct {
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"`
	Timestamp time.Time     `json:"timestamp"`
	Age       time.Duration `json:"ageNanos"`
	Code      string        `json:"code"`
	Error     string        `json:"error"` // the error header, emails and long digit runs masked
	// Source is where the worker read the record: topic/partition/offset.
	Source  string `json:"source"`
	BatchID string `json:"batchId,omitempty"` // the dispatcher's batch-id header
	// Value says what the bytes are: "PayoutRequested", "PayoutBatch",
	// "undecodable" or "empty" (ingest leaves out a value above the DLQ
	// topic's limit).
	Value     string `json:"value"`
	RequestID string `json:"requestId,omitempty"` // of a PayoutRequested
	// Key is the record's key when it is the requestId (or, for a value
	// that does not decode, a valid requestId, as ingest rejects it under
	// it on the status topic), else masked: a bad producer's key may be
	// anything.
	Key             string `json:"key"`
	Rail            string `json:"rail,omitempty"`
	AmountInCents   int64  `json:"amountInCents,omitempty"`
	OriginAccountID string `json:"originAccountId,omitempty"`
	PayeeName       string `json:"payeeName,omitempty"`
	PayeeLegalID    string `json:"payeeLegalId,omitempty"`
	PayeeAccount    string `json:"payeeAccountNumber,omitempty"`
	PayeeEmail      string `json:"payeeEmail,omitempty"`
	PayeePhone      string `json:"payeePhone,omitempty"`
	PayeePixKey     string `json:"payeePixKey,omitempty"`

	rec       *kgo.Record
	req       *payout.Request
	errHeader string // the error header as written, unmasked
}

func (d *DeadLetter) at() string { return position(d.Partition, d.Offset) }

func position(p int32, o int64) string { return strconv.Itoa(int(p)) + "/" + strconv.FormatInt(o, 10) }

// parsePosition parses "partition/offset".
func parsePosition(s string) (int32, int64, error) {
	ps, os, ok := strings.Cut(s, "/")
	p, err1 := strconv.ParseInt(ps, 10, 32)
	o, err2 := strconv.ParseInt(os, 10, 64)
	if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
		return 0, 0, fmt.Errorf("%q is not partition/offset (e.g. 0/42)", s)
	}
	return int32(p), o, nil
}

// DLQListResult lists dead letters.
type DLQListResult struct {
	Topic          string       `json:"topic"`
	RecordsScanned int64        `json:"recordsScanned"`
	Items          []DeadLetter `json:"items"`
}

// DLQList reads the requests DLQ topic (every partition, from its start to
// its last stable offset, read_committed) and lists the dead letters that
// --error, --offset and --request-id select, oldest first per partition,
// at most --limit of them. It only reads.
func (t *Tool) DLQList(ctx context.Context) (*DLQListResult, error) {
	all, n, err := t.readDLQ(ctx)
	if err != nil {
		return nil, err
	}
	return &DLQListResult{Topic: t.st.Topics.RequestsDLQ, RecordsScanned: n, Items: t.selectDeadLetters(all)}, nil
}

// readDLQ reads and describes every dead letter.
func (t *Tool) readDLQ(ctx context.Context) ([]DeadLetter, int64, error) {
	opts, err := t.kafka()
	if err != nil {
		return nil, 0, err
	}
	codec, err := t.events(ctx)
	if err != nil {
		return nil, 0, err
	}
	topic := t.st.Topics.RequestsDLQ
	parts, err := allPartitions(ctx, opts, topic)
	if err != nil {
		return nil, 0, err
	}
	now, m := t.now(), t.mask()
	out := []DeadLetter{}
	st, err := scan(ctx, opts, topic, parts, nil, func(r *kgo.Record) error {
		d := DeadLetter{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Age: now.Sub(r.Timestamp), rec: r}
		var src [3]string
		for _, h := range r.Headers {
			switch h.Key {
			case events.HeaderError:
				d.Code, d.Error, d.errHeader = errorCode(string(h.Value)), m.text(string(h.Value)), string(h.Value)
			case events.HeaderSourceTopic:
				src[0] = string(h.Value)
			case events.HeaderSourcePartition:
				src[1] = string(h.Value)
			case events.HeaderSourceOffset:
				src[2] = string(h.Value)
			case dispatch.HeaderBatchID:
				d.BatchID = string(h.Value)
			}
		}
		if d.Code == "" {
			d.Code = "-"
		}
		d.Source = src[0] + "/" + src[1] + "/" + src[2]
		var req payout.Request
		var b payout.Batch
		switch {
		case len(r.Value) == 0:
			d.Value = "empty"
		case codec.DecodeRequest(r.Value, &req) == nil:
			d.Value, d.req = "PayoutRequested", &req
			d.RequestID, d.Rail, d.AmountInCents, d.OriginAccountID = req.RequestID, deref(req.Rail), req.AmountInCents, req.OriginAccountID
			be := req.Beneficiary
			d.PayeeName, d.PayeeLegalID, d.PayeeAccount, d.PayeeEmail = m.name(be.Name), m.id(be.LegalID), m.account(be.AccountNumber), m.email(be.Email)
			d.PayeePhone, d.PayeePixKey = m.id(deref(be.Phone)), m.id(deref(be.PixKey))
		case codec.DecodeBatch(r.Value, &b) == nil:
			d.Value = "PayoutBatch"
			if d.BatchID == "" {
				d.BatchID = b.BatchID
			}
		default:
			d.Value = "undecodable"
		}
		switch k := string(r.Key); {
		case d.RequestID != "" && k == d.RequestID:
			d.Key = k
		case d.req == nil && payout.ValidReference(k):
			// Ingest takes it for a requestId and rejects it under it.
			d.Key = k
		default:
			d.Key = m.id(string(r.Key))
		}
		out = append(out, d)
		return nil
	})
	return out, st.Records, err
}

// selectDeadLetters keeps the dead letters that --error, --offset and
// --request-id select (each given filter must match), at most --limit.
func (t *Tool) selectDeadLetters(all []DeadLetter) []DeadLetter {
	offsets, ids := map[string]bool{}, map[string]bool{}
	for _, o := range t.st.Offsets {
		p, off, err := parsePosition(o)
		if err == nil {
			offsets[position(p, off)] = true
		}
	}
	for _, id := range t.st.RequestIDs {
		ids[id] = true
	}
	out := []DeadLetter{}
	for _, d := range all {
		if t.st.Error != "" && !strings.EqualFold(d.Code, t.st.Error) {
			continue
		}
		if len(offsets) > 0 && !offsets[d.at()] {
			continue
		}
		if len(ids) > 0 && !ids[d.RequestID] && !(d.RequestID == "" && ids[string(d.rec.Key)]) {
			continue
		}
		if t.st.Limit > 0 && len(out) == t.st.Limit {
			break
		}
		out = append(out, d)
	}
	return out
}

// Tables renders the list.
func (r *DLQListResult) Tables() []Table {
	tb := Table{Title: fmt.Sprintf("Dead letters of %s (%d records read)", r.Topic, r.RecordsScanned),
		Columns: []string{"AT", "AGE", "CODE", "REQUEST", "VALUE", "RAIL", "AMOUNT", "PAYEE", "LEGAL ID", "ACCOUNT", "EMAIL", "PHONE", "PIX KEY", "SOURCE", "ERROR"}}
	for _, d := range r.Items {
		amount := "-"
		if d.Value == "PayoutRequested" {
			amount = cents(d.AmountInCents)
		}
		req := d.RequestID
		if req == "" {
			req = "key " + orDash(d.Key)
		}
		tb.Rows = append(tb.Rows, []string{d.at(), age(d.Age), d.Code, req, d.Value, orDash(d.Rail), amount, orDash(d.PayeeName),
			orDash(d.PayeeLegalID), orDash(d.PayeeAccount), orDash(d.PayeeEmail), orDash(d.PayeePhone), orDash(d.PayeePixKey), d.Source, orDash(d.Error)})
	}
	return []Table{tb}
}

// ReplayResult is what dlq replay did (or, with --dry-run, would do) with
// each selected dead letter.
type ReplayResult struct {
	DryRun bool         `json:"dryRun"`
	Topic  string       `json:"topic"` // the request topic
	Items  []ReplayItem `json:"items"`
}

// The verdicts of a replay.
const (
	VerdictReplayed    = "replayed"
	VerdictWouldReplay = "would replay"
	VerdictRefused     = "refused"
)

// ReplayItem is one dead letter's verdict.
type ReplayItem struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Code      string `json:"code"`
	RequestID string `json:"requestId,omitempty"`
	Verdict   string `json:"verdict"`
	Reason    string `json:"reason,omitempty"` // why it was refused
	// ReplayedTo is the request record written: partition/offset.
	ReplayedTo string `json:"replayedTo,omitempty"`
}

// ReplayHelp is the safety argument of dlq replay, printed by its --help
// and kept in docs/operations.md.
const ReplayHelp = `dlq replay republishes dead letters of the requests DLQ topic to the request
topic, keyed by their requestId, with the header replayed-from:
<partition>/<offset> (of the DLQ topic) and without the DLQ headers (error,
source-topic, source-partition, source-offset, batch-id). Fix the producer
(or the schema registry) first: a value that still does not decode only
comes back.

Choose the dead letters with --offset, --request-id or --error (one is
required), --limit bounds them; --dry-run says what would be done.

A dead letter is refused, with the reason printed, when
  - its error is DUPLICATE_REQUEST: it is a copy, the original of that
    requestId is already in the pipeline. Except a copy ingest judged on its
    key alone (bytes it could not decode, the error "DUPLICATE_REQUEST:
    <decode error>", under a key that is not the requestId they decode to
    now: a producer keying by seller has every later request of the seller
    marked a copy of the first), which the rules below decide;
  - its value does not decode as a PayoutRequested (a batch the dispatcher
    dead-lettered, bytes that are still bad, a value left out for size);
  - its requestId has any event on the status topic: it was batched,
    rejected or paid, so a replay could only be a duplicate (read up to
    the high watermark: the run waits for transactions open there to end);
  - retention has removed events of the status topic, in the requestId's
    partition, written after DEDUPE_WINDOW before the dead letter: then no
    event proves nothing (the original a copy was dead-lettered for may
    have been paid up to DEDUPE_WINDOW earlier);
  - the request topic holds a record with replayed-from naming it, keyed
    by its requestId: an earlier replay sent it, and ingest may not have
    processed it yet;
  - the request topic holds another record keyed by its requestId, or
    whose value is its request under another key (or none), other than a
    record a dead letter was made of: the producer sent it again, ingest
    handles that one (a record there that may be one and cannot be read
    yet, the schema registry down or not knowing its schema yet, fails the
    run);
  - another dead letter of the same run replays the same requestId.
The two request-topic rules read every partition of it: a producer's
partitioner may not be ours (kcat and librdkafka put a key where crc32
says), and partitions added since move a key.

Even a replay that slipped through these checks (two operators at the same
moment) cannot pay twice within DEDUPE_WINDOW: ingest's seen index drops a
second record of a requestId to the DLQ as DUPLICATE_REQUEST, and the
dispatcher's duplicate index drops a copy that reaches a batch; a POST whose
outcome is unknown is never repeated before the provider is asked by the
requestId. Past DEDUPE_WINDOW those indexes have forgotten the requestId,
and both live in Redis, which a Redis loss empties: then the status topic
check above is what refuses it, and it is never skipped.
`

// DLQReplay republishes the selected dead letters that pass every safety
// rule of ReplayHelp, or with dryRun only says which would be.
func (t *Tool) DLQReplay(ctx context.Context, dryRun bool) (*ReplayResult, error) {
	if len(t.st.Offsets) == 0 && len(t.st.RequestIDs) == 0 && t.st.Error == "" {
		return nil, errNoSelection
	}
	opts, err := t.kafka()
	if err != nil {
		return nil, err
	}
	all, _, err := t.readDLQ(ctx)
	if err != nil {
		return nil, err
	}
	chosen := t.selectDeadLetters(all)
	res := &ReplayResult{DryRun: dryRun, Topic: t.st.Topics.Requests, Items: []ReplayItem{}}
	// The requestIds that may be replayed, before the topic checks.
	var ids [][]byte
	for _, d := range chosen {
		if d.req != nil {
			ids = append(ids, []byte(d.RequestID))
		}
	}
	hist := statusHistory{oldest: map[int32]time.Time{}}
	// Every partition a request's key fell in at any partition count up to
	// today's (keyPartitions): one added since its events were written
	// moves the key, and the partition of today's count would hold none.
	// Up to the high watermark, not the last stable offset: an event
	// committed after another producer's transaction began on its
	// partition (another ingest replica's window) is above the latter
	// until that transaction ends, while the dead letter committed with
	// it is readable (a REJECTED request was replayed so). The read waits
	// for those transactions (events.ScanSettled).
	statuses, err := keysOn(ctx, opts, t.st.Topics.Status, ids, keyedPartitions, settled, func(r *kgo.Record) {
		if _, ok := hist.oldest[r.Partition]; !ok {
			hist.oldest[r.Partition] = r.Timestamp
		}
	})
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if err := hist.load(ctx, opts, t.st.Topics.Status); err != nil {
			return nil, err
		}
	}
	// replayed maps a dead letter (replayedKey) to the request record
	// carrying its replayed-from, and back. Every partition of the
	// request topic: its producers are not ours (kcat and librdkafka put a
	// key where crc32 says, not murmur2), and partitions added since an
	// earlier replay move a key too.
	replayed := map[string]string{}
	// A record of one of the requests under another key (or none) is sent
	// again too: only dead letters whose key was not their requestId can
	// be replayed, and the producer they came from keys its requests so.
	// The records the DLQ holds dead letters of are not: ingest ended them.
	codec, err := t.events(ctx)
	if err != nil {
		return nil, err
	}
	want, dead := map[string]bool{}, map[string]bool{}
	for _, id := range ids {
		want[string(id)] = true
	}
	for _, d := range all {
		dead[d.Source] = true
	}
	byValue := map[string][]string{}
	var req payout.Request
	var derr error
	onRequests, err := keysOn(ctx, opts, t.st.Topics.Requests, ids, everyPartition, stable, func(r *kgo.Record) {
		at := position(r.Partition, r.Offset)
		for _, h := range r.Headers {
			if h.Key == HeaderReplayedFrom {
				// Named by its requestId too (replayRecord keys by it): a
				// DLQ topic re-created counts its positions from 0 again,
				// and a replay of the old one's dead letter at a position is
				// no replay of the new one's there.
				replayed[replayedKey(string(h.Value), string(r.Key))], replayed["record "+at] = at, string(h.Value)
			}
		}
		if want[string(r.Key)] || dead[t.st.Topics.Requests+"/"+at] {
			return
		}
		switch err := codec.DecodeRequestWithoutMetadata(r.Value, &req); {
		case err == nil && want[req.RequestID]:
			byValue[req.RequestID] = append(byValue[req.RequestID], at)
		case err != nil && !events.Permanent(err) && derr == nil:
			derr = fmt.Errorf("dlq replay: %s %s may be one of these requests sent again under another key, and does not decode now: %w",
				t.st.Topics.Requests, at, err)
		}
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	for id, at := range byValue {
		onRequests[id] = append(onRequests[id], at...)
	}
	var out []*kgo.Record
	var outIdx []int
	taken := map[string]string{}
	for _, d := range chosen {
		it := ReplayItem{Partition: d.Partition, Offset: d.Offset, Code: d.Code, RequestID: d.RequestID}
		it.Reason = t.refusal(&d, statuses, onRequests, replayed, taken)
		if it.Reason == "" && !hist.covers(t.st.Topics.Status, d.RequestID, d.Timestamp.Add(-t.st.DedupeWindow)) {
			it.Reason = fmt.Sprintf("retention has removed %s's events of this requestId's partition from DEDUPE_WINDOW (%v) before the dead letter: "+
				"nothing proves it was never batched or paid (only the producer can send it again)", t.st.Topics.Status, t.st.DedupeWindow)
		}
		if it.Reason != "" {
			it.Verdict = VerdictRefused
			res.Items = append(res.Items, it)
			continue
		}
		taken[d.RequestID] = d.at()
		it.Verdict = VerdictWouldReplay
		if !dryRun {
			out = append(out, replayRecord(&d, t.st.Topics.Requests))
			outIdx = append(outIdx, len(res.Items))
		}
		res.Items = append(res.Items, it)
	}
	if len(out) == 0 {
		return res, nil
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	results := cl.ProduceSync(ctx, out...)
	var perr error
	for i, pr := range results {
		it := &res.Items[outIdx[i]]
		if pr.Err != nil {
			it.Verdict, it.Reason = VerdictRefused, "produce failed: "+pr.Err.Error()
			perr = errors.Join(perr, pr.Err)
			continue
		}
		it.Verdict, it.ReplayedTo = VerdictReplayed, position(pr.Record.Partition, pr.Record.Offset)
	}
	if perr != nil {
		return res, fmt.Errorf("dlq replay: some records were not produced (run again: the replayed ones are refused then): %w", perr)
	}
	return res, nil
}

// errNoSelection: dlq replay without --offset, --request-id or --error.
var errNoSelection = errors.New("dlq replay: choose the dead letters with --offset, --request-id or --error")

// refusal returns why d must not be replayed, or "".
func (t *Tool) refusal(d *DeadLetter, statuses, onRequests map[string][]string, replayed, taken map[string]string) string {
	if d.Code == CodeDuplicateRequest && !d.copyOfKeyOnly() {
		return "a DUPLICATE_REQUEST copy: the original of this requestId is already in the pipeline"
	}
	if d.req == nil {
		return "the value does not decode as a PayoutRequested (" + d.Value + "): only the producer can send this request again"
	}
	if !payout.ValidReference(d.RequestID) {
		return "its requestId is not a valid reference: ingest would reject it"
	}
	if at, ok := taken[d.RequestID]; ok {
		return "dead letter " + at + " of this run replays the same requestId"
	}
	if at := statuses[d.RequestID]; len(at) > 0 {
		return fmt.Sprintf("the requestId has %d event(s) on %s (first at %s): it was batched, rejected or paid, a replay could only be a duplicate",
			len(at), t.st.Topics.Status, at[0])
	}
	if at, ok := replayed[replayedKey(d.at(), d.RequestID)]; ok {
		return "already replayed: " + t.st.Topics.Requests + " " + at + " carries " + HeaderReplayedFrom + ": " + d.at()
	}
	src := d.Source
	for _, at := range onRequests[d.RequestID] {
		if src == t.st.Topics.Requests+"/"+at {
			continue // the dead letter's own original record
		}
		if from, ok := replayed["record "+at]; ok {
			return "the request topic already holds this requestId at " + at + " (replayed from dead letter " + from + "): ingest handles that record"
		}
		return "the request topic already holds this requestId at " + at + " (sent again): ingest handles that record"
	}
	return ""
}

// replayedKey names, in DLQReplay's replayed map, the replay of the dead
// letter at position at (its replayed-from) of requestId id (its key).
func replayedKey(at, id string) string { return at + " " + id }

// copyOfKeyOnly reports a DUPLICATE_REQUEST dead letter that ingest judged
// on its key alone: bytes it could not decode (the header carries the decode
// error after the code) under a key another record held, a key that is not
// the requestId the bytes decode to now. Ingest claims the key of a record it
// cannot decode, so a producer keying by seller has every later request of
// that seller marked a copy of the first: nothing says the request itself
// was ever seen, and the other rules decide. A copy judged on its requestId
// (the header exactly DUPLICATE_REQUEST: ingest's decodable copies, the
// dispatcher's) or keyed by it stays refused.
func (d *DeadLetter) copyOfKeyOnly() bool {
	return d.req != nil && strings.HasPrefix(d.errHeader, CodeDuplicateRequest+": ") && string(d.rec.Key) != d.RequestID
}

// replayRecord is d as a request record: keyed by its requestId, its value
// bytes as they are, its headers without the DLQ ones, plus replayed-from.
func replayRecord(d *DeadLetter, topic string) *kgo.Record {
	var hs []kgo.RecordHeader
	for _, h := range d.rec.Headers {
		switch h.Key {
		case events.HeaderError, events.HeaderSourceTopic, events.HeaderSourcePartition, events.HeaderSourceOffset,
			dispatch.HeaderBatchID, HeaderReplayedFrom:
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs, kgo.RecordHeader{Key: HeaderReplayedFrom, Value: []byte(d.at())})
	return &kgo.Record{Topic: topic, Key: []byte(d.RequestID), Value: d.rec.Value, Headers: hs}
}

// statusHistory says how far back the status topic's partitions still
// reach: rule 3 (no event of the requestId) proves a request was never
// handled only if retention kept its partition's events from when its
// original may have been handled, up to DEDUPE_WINDOW before the dead
// letter (a copy is dead-lettered only while ingest remembers the
// original).
type statusHistory struct {
	n       int
	trimmed map[int32]bool      // retention deleted records (log start > 0)
	oldest  map[int32]time.Time // the oldest record kept, per partition read
}

// load reads the partition count and the log start offsets of topic.
func (h *statusHistory) load(ctx context.Context, opts []kgo.Opt, topic string) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if h.n, err = partitions(ctx, adm, topic); err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("kafka: start offsets of %s: %w", topic, err)
	}
	h.trimmed = map[int32]bool{}
	var lerr error
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = fmt.Errorf("kafka: start offset of %s/%d: %w", topic, o.Partition, o.Err)
		}
		h.trimmed[o.Partition] = o.Offset > 0
	})
	return lerr
}

// covers reports whether the status topic still holds every event of id
// written since then: each partition id's key may have fallen in
// (keyPartitions: partitions added since an event was written move its
// key, and the event stays where it was) was never trimmed, or the oldest
// record it keeps is from then or before.
func (h *statusHistory) covers(topic, id string, since time.Time) bool {
	for _, p := range keyPartitions(topic, []byte(id), h.n) {
		trimmed, known := h.trimmed[p]
		if !known {
			return false
		}
		if oldest, ok := h.oldest[p]; trimmed && (!ok || oldest.After(since)) {
			return false
		}
	}
	return h.n > 0
}

// Which partitions of a topic keysOn reads.
const (
	// keyedPartitions: each partition a key fell in at any partition count
	// up to today's (keyPartitions), for a topic only the workers write:
	// their producers partition by franz-go's murmur2.
	keyedPartitions = false
	// everyPartition: all of them, for a topic other producers write with
	// a partitioner of their own: where a key lands proves nothing.
	everyPartition = true
)

// How far keysOn reads each partition, read_committed.
const (
	// settled: up to the high watermark, waiting for the transactions
	// open below it to end (events.ScanSettled): every record committed
	// before the read, for a proof that a key has none.
	settled = true
	// stable: up to the last stable offset (events.Scan).
	stable = false
)

// keysOn reads the partitions of topic that keys may be in (keyedPartitions
// or everyPartition), up to where upTo says (settled or stable), and
// returns, for each of keys, the positions (partition/offset) of the
// records keyed by it. each, when set, sees every record of those
// partitions.
func keysOn(ctx context.Context, opts []kgo.Opt, topic string, keys [][]byte, all, upTo bool, each func(*kgo.Record)) (map[string][]string, error) {
	found := map[string][]string{}
	if len(keys) == 0 {
		return found, nil
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	n, err := partitions(ctx, kadm.NewClient(cl), topic)
	cl.Close()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	seen := map[int32]bool{}
	var parts []int32
	for _, k := range keys {
		want[string(k)] = true
		ps := keyPartitions(topic, k, n)
		if all {
			ps = allOf(n)
		}
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				parts = append(parts, p)
			}
		}
	}
	read := events.Scan
	if upTo == settled {
		read = events.ScanSettled
	}
	_, err = read(ctx, opts, topic, parts, nil, func(r *kgo.Record) error {
		if each != nil {
			each(r)
		}
		if want[string(r.Key)] {
			found[string(r.Key)] = append(found[string(r.Key)], position(r.Partition, r.Offset))
		}
		return nil
	})
	if err != nil && upTo == settled && ctx.Err() != nil {
		// The read waits for every transaction open on topic to end: a
		// hung producer's, or an ingest window (up to BATCH_MAX_WINDOW,
		// which the broker aborts a minute later).
		err = fmt.Errorf("%w: a transaction open on %s did not end in time (an ingest window stays open up to BATCH_MAX_WINDOW, and the broker aborts a hung one a minute later): run the command again once it has, or give it more time (--timeout, PAYOUTSCTL_TIMEOUT)", err, topic)
	}
	return found, err
}

// allPartitions lists the partitions of topic.
func allPartitions(ctx context.Context, opts []kgo.Opt, topic string) ([]int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	n, err := partitions(ctx, kadm.NewClient(cl), topic)
	cl.Close()
	if err != nil {
		return nil, err
	}
	return allOf(n), nil
}

// allOf lists the partitions of a topic of n.
func allOf(n int) []int32 {
	parts := make([]int32, n)
	for i := range parts {
		parts[i] = int32(i)
	}
	return parts
}

// Tables renders the verdicts.
func (r *ReplayResult) Tables() []Table {
	title := "Replay to " + r.Topic
	if r.DryRun {
		title += " (dry run: nothing produced)"
	}
	tb := Table{Title: title, Columns: []string{"AT", "CODE", "REQUEST", "VERDICT", "TO", "REASON"}}
	for _, it := range r.Items {
		tb.Rows = append(tb.Rows, []string{position(it.Partition, it.Offset), it.Code, orDash(it.RequestID), it.Verdict, orDash(it.ReplayedTo), orDash(it.Reason)})
	}
	return []Table{tb}
}
