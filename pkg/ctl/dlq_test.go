package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// dlqEnv is a kfake cluster with the request, status and DLQ topics and
// payoutsctl's environment on it. No worker runs: what is on the topics is
// what the test put there.
type dlqEnv struct {
	t      *testing.T
	k      *testenv.Cluster
	cl     *kgo.Client
	codec  *events.Codec
	topics events.Topics
	env    map[string]string
}

func newDLQEnv(t *testing.T) *dlqEnv {
	k := testenv.Kafka(t)
	tp := events.DefaultTopics()
	tp.Requests, tp.Status, tp.RequestsDLQ = k.Topic(t, "requests", 3), k.Topic(t, "status", 3), k.Topic(t, "dlq", 2)
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &dlqEnv{t: t, k: k, cl: k.Client(t), codec: c, topics: tp, env: map[string]string{"KAFKA_BROKERS": k.BrokersCSV(),
		"TOPIC_REQUESTS": tp.Requests, "TOPIC_STATUS": tp.Status, "TOPIC_REQUESTS_DLQ": tp.RequestsDLQ}}
}

// produce writes r and returns its partition/offset.
func (e *dlqEnv) produce(r *kgo.Record) string {
	e.t.Helper()
	res := e.cl.ProduceSync(context.Background(), r)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return position(res[0].Record.Partition, res[0].Record.Offset)
}

func (e *dlqEnv) value(r payout.Request) []byte {
	e.t.Helper()
	v, err := e.codec.AppendRequest(nil, &r)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// deadLetter writes the DLQ record the workers write (events.DLQRecord)
// for a record read at requests 1/<offset> with key and value.
func (e *dlqEnv) deadLetter(key string, value []byte, cause error, extra ...kgo.RecordHeader) string {
	src := &kgo.Record{Topic: e.topics.Requests, Partition: 1, Offset: 1000 + int64(len(key)), Key: []byte(key), Value: value,
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-def-01")}}}
	d := events.DLQRecord(src, e.topics.RequestsDLQ, cause)
	d.Headers = append(d.Headers, extra...)
	return e.produce(d)
}

func (e *dlqEnv) run(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, func(s string) (string, bool) { v, ok := e.env[s]; return v, ok }, &out, &errb)
	return out.String(), errb.String(), code
}

func (e *dlqEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("payoutsctl %v: exit %d: %s", args, code, errs)
	}
	return out
}

// piiRequest is a request whose payee carries every kind of personal data.
func piiRequest(id string) payout.Request {
	r := request(id, wompitest.AccountMain, 1_500_000, "1020304050")
	phone, pix := "5511987654321", "pix.owner@example.com.br"
	r.Beneficiary.Phone, r.Beneficiary.PixKey = &phone, &pix
	return r
}

var piiValues = []string{"1020304050", "31234567894", "valentina.rios@example.co", "5511987654321", "pix.owner@example.com.br", "Valentina Ríos"}

// decodeErr is the error ingest gets for bytes that are not a request.
func (e *dlqEnv) decodeErr(b []byte) error {
	var r payout.Request
	err := e.codec.DecodeRequest(b, &r)
	if err == nil {
		e.t.Fatal("garbage decodes")
	}
	return err
}

func TestDLQListMasksPersonalData(t *testing.T) {
	e := newDLQEnv(t)
	garbage := []byte("not a request: 1020304050")
	at := map[string]string{
		"dup": e.deadLetter("dlq-dup", e.value(piiRequest("dlq-dup")), errors.New(string(payout.ReasonDuplicateRequest)),
			kgo.RecordHeader{Key: dispatch.HeaderBatchID, Value: []byte("batch-1")}),
		"undecodable": e.deadLetter("dlq-undecodable", garbage, e.decodeErr(garbage)),
		"schema":      e.deadLetter("not the id", e.value(piiRequest("dlq-schema")), fmt.Errorf("decode: %w", events.ErrUnknownSchema)),
		"failed":      e.deadLetter("batch-9", []byte("batch bytes"), errors.New("DISPATCH_FAILED: payee valentina.rios@example.co refused")),
	}

	masked := e.mustRun("dlq", "list")
	t.Logf("payoutsctl dlq list\n%s", masked)
	revealed := e.mustRun("dlq", "list", "--reveal")
	js := e.mustRun("dlq", "list", "--output", "json")
	for _, pii := range piiValues {
		if strings.Contains(masked, pii) || strings.Contains(js, pii) {
			t.Errorf("dlq list shows %q without --reveal", pii)
		}
		if !strings.Contains(revealed, pii) {
			t.Errorf("dlq list --reveal does not show %q", pii)
		}
	}
	var l DLQListResult
	decode(t, js, &l)
	byAt := map[string]DeadLetter{}
	for _, d := range l.Items {
		byAt[d.at()] = d
	}
	for name, want := range map[string]struct{ code, value, req string }{
		"dup":         {"DUPLICATE_REQUEST", "PayoutRequested", "dlq-dup"},
		"undecodable": {"UNDECODABLE", "undecodable", ""},
		"schema":      {"SCHEMA_NOT_FOUND", "PayoutRequested", "dlq-schema"},
		"failed":      {"DISPATCH_FAILED", "undecodable", ""},
	} {
		d, ok := byAt[at[name]]
		if !ok || d.Code != want.code || d.Value != want.value || d.RequestID != want.req {
			t.Errorf("%s at %s: %+v, want %+v", name, at[name], d, want)
		}
		if !strings.HasPrefix(d.Source, e.topics.Requests+"/1/") {
			t.Errorf("%s: source %q", name, d.Source)
		}
	}
	if d := byAt[at["dup"]]; d.BatchID != "batch-1" || !strings.HasSuffix(d.PayeeLegalID, "4050") || d.PayeeLegalID == "1020304050" || d.Age < 0 {
		t.Errorf("dup: %+v", d)
	}
	if d := byAt[at["schema"]]; d.Key == "not the id" {
		t.Errorf("a key that is not the requestId is shown: %q", d.Key)
	}

	var f DLQListResult
	decode(t, e.mustRun("dlq", "list", "--error", "schema_not_found", "--output", "json"), &f)
	if len(f.Items) != 1 || f.Items[0].RequestID != "dlq-schema" {
		t.Fatalf("--error SCHEMA_NOT_FOUND: %+v", f.Items)
	}
	e.env["PAYOUTSCTL_LIMIT"] = "2"
	decode(t, e.mustRun("dlq", "list", "--output", "json"), &f)
	if len(f.Items) != 2 {
		t.Fatalf("PAYOUTSCTL_LIMIT=2: %d items", len(f.Items))
	}
}

// replay runs dlq replay --output json with args and returns the verdicts
// by dead letter.
func (e *dlqEnv) replay(args ...string) map[string]ReplayItem {
	e.t.Helper()
	var r ReplayResult
	decode(e.t, e.mustRun(append([]string{"dlq", "replay", "--output", "json"}, args...)...), &r)
	out := map[string]ReplayItem{}
	for _, it := range r.Items {
		out[position(it.Partition, it.Offset)] = it
	}
	return out
}

// replayed returns the records of the request topic that carry
// replayed-from.
func (e *dlqEnv) replayed() []*kgo.Record {
	var out []*kgo.Record
	for _, r := range e.k.ReadAll(e.t, e.topics.Requests) {
		for _, h := range r.Headers {
			if h.Key == HeaderReplayedFrom {
				out = append(out, r)
			}
		}
	}
	return out
}

func TestDLQReplaySafetyRules(t *testing.T) {
	e := newDLQEnv(t)
	garbage := []byte("\xc3\x01 still not a request")
	okValue := e.value(piiRequest("dlq-ok"))
	at := map[string]string{
		"dup":         e.deadLetter("dlq-dup", e.value(piiRequest("dlq-dup")), errors.New(string(payout.ReasonDuplicateRequest))),
		"undecodable": e.deadLetter("dlq-undecodable", garbage, e.decodeErr(garbage)),
		"has status":  e.deadLetter("k1", e.value(piiRequest("dlq-has-status")), fmt.Errorf("decode: %w", events.ErrUnknownSchema)),
		"resent":      e.deadLetter("k2", e.value(piiRequest("dlq-resent")), fmt.Errorf("decode: %w", events.ErrUnknownSchema)),
		"ok": e.deadLetter("k3", okValue, fmt.Errorf("decode: %w", events.ErrUnknownSchema),
			kgo.RecordHeader{Key: dispatch.HeaderBatchID, Value: []byte("batch-7")}),
		"twice-1": e.deadLetter("k4", e.value(piiRequest("dlq-twice")), fmt.Errorf("decode: %w", events.ErrUnknownSchema)),
		"twice-2": e.deadLetter("k55", e.value(piiRequest("dlq-twice")), fmt.Errorf("decode: %w", events.ErrUnknownSchema)),
	}
	e.produce(statusRecord(t, e.codec, e.topics.Status, "dlq-has-status", payout.StatusBatched, time.Now()))
	// The producer, fixed, sent this request again itself.
	e.produce(&kgo.Record{Topic: e.topics.Requests, Key: []byte("dlq-resent"), Value: e.value(piiRequest("dlq-resent"))})
	var all []string
	for _, p := range at {
		all = append(all, p)
	}
	sel := []string{"--offset", strings.Join(all, ",")}

	if _, errs, code := e.run("dlq", "replay"); code != 2 || !strings.Contains(errs, "--offset, --request-id or --error") {
		t.Fatalf("replay without a selection: exit %d: %s", code, errs)
	}

	dry := e.replay(append(sel, "--dry-run")...)
	if it := dry[at["ok"]]; it.Verdict != VerdictWouldReplay {
		t.Fatalf("dry run: %+v", it)
	}
	if n := len(e.replayed()); n != 0 {
		t.Fatalf("--dry-run produced %d records", n)
	}
	if it := e.replay(append(sel, "--dry-run", "true")...)[at["ok"]]; it.Verdict != VerdictWouldReplay || len(e.replayed()) != 0 {
		t.Fatalf("--dry-run true: %+v, %d records produced", it, len(e.replayed()))
	}

	first := e.replay(sel...)
	refused := map[string]string{
		"dup":         "DUPLICATE_REQUEST copy",
		"undecodable": "does not decode as a PayoutRequested",
		"has status":  "event(s) on " + e.topics.Status,
		"resent":      "already holds this requestId",
		"twice-2":     "of this run replays the same requestId",
	}
	for name, reason := range refused {
		it := first[at[name]]
		if it.Verdict != VerdictRefused || !strings.Contains(it.Reason, reason) {
			t.Errorf("%s: %+v, want refused: %s", name, it, reason)
		}
	}
	for _, name := range []string{"ok", "twice-1"} {
		if it := first[at[name]]; it.Verdict != VerdictReplayed || it.ReplayedTo == "" {
			t.Errorf("%s: %+v, want replayed", name, it)
		}
	}
	recs := e.replayed()
	if len(recs) != 2 {
		t.Fatalf("%d replayed records, want 2", len(recs))
	}
	var ok *kgo.Record
	for _, r := range recs {
		if string(r.Key) == "dlq-ok" {
			ok = r
		}
	}
	if ok == nil || !bytes.Equal(ok.Value, okValue) {
		t.Fatalf("the replayed record of dlq-ok: %+v", ok)
	}
	hs := map[string]string{}
	for _, h := range ok.Headers {
		hs[h.Key] = string(h.Value)
	}
	if hs[HeaderReplayedFrom] != at["ok"] || hs["traceparent"] != "00-abc-def-01" || len(hs) != 2 {
		t.Fatalf("headers of the replayed record: %v (want replayed-from %s, traceparent, no DLQ header)", hs, at["ok"])
	}
	var req payout.Request
	if err := e.codec.DecodeRequest(ok.Value, &req); err != nil || req.RequestID != "dlq-ok" {
		t.Fatalf("the replayed value: %v %+v", err, req)
	}

	// Run again before ingest processed anything (no ingest runs here):
	// no status event exists yet, and the replayed-from header refuses it.
	second := e.replay(sel...)
	for _, name := range []string{"ok", "twice-1"} {
		it := second[at[name]]
		if it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "already replayed") || !strings.Contains(it.Reason, HeaderReplayedFrom+": "+at[name]) {
			t.Errorf("second run, %s: %+v, want refused as already replayed", name, it)
		}
	}
	if n := len(e.replayed()); n != 2 {
		t.Fatalf("after the second run %d replayed records, want 2", n)
	}
	table := e.mustRun(append([]string{"dlq", "replay"}, sel...)...)
	t.Logf("payoutsctl dlq replay (third run)\n%s", table)
	for _, pii := range piiValues {
		if strings.Contains(table, pii) {
			t.Errorf("the replay table shows %q", pii)
		}
	}
}

// TestDLQReplayThroughThePipeline runs ingest, the dispatcher and the
// tracker: the workers' own dead letters (a copy, bad bytes) are listed
// with their codes and refused; a dead letter whose bytes decode is
// replayed, ingest batches it and it is paid; a second replay then
// refuses it for its status events.
func TestDLQReplayThroughThePipeline(t *testing.T) {
	k := startStack(t, time.Hour)
	dup := request("ctl-dlq-dup", wompitest.AccountMain, 810_000, "1020304052")
	k.publish(dup, dup)
	bad := []byte("bytes a broken producer sent")
	if err := k.cl.ProduceSync(context.Background(), &kgo.Record{Topic: k.s.Topics.Requests, Key: []byte("ctl-dlq-bad"), Value: bad}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	k.waitStatus(dup.RequestID, payout.StatusSubmitted)
	k.waitStatus("ctl-dlq-bad", payout.StatusRejected)

	// A request a producer once sent with a wrong key: it is in the DLQ
	// as if its schema had been unknown, and decodes now.
	lost := request("ctl-dlq-lost", wompitest.AccountMain, 920_000, "1020304053")
	v, err := k.s.Codec.AppendRequest(nil, &lost)
	if err != nil {
		t.Fatal(err)
	}
	d := events.DLQRecord(&kgo.Record{Topic: k.s.Topics.Requests, Partition: 0, Offset: 99, Key: []byte("wrong-key"), Value: v},
		k.s.Topics.RequestsDLQ, fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	if err := k.cl.ProduceSync(context.Background(), d).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var l DLQListResult
	deadline := time.Now().Add(30 * time.Second)
	codes := map[string]string{}
	for len(codes) < 3 {
		decode(t, k.run("dlq", "list", "--output", "json"), &l)
		codes = map[string]string{}
		for _, it := range l.Items {
			id := it.RequestID
			if id == "" {
				id = it.Key
			}
			codes[id] = it.Code
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %+v", l.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if codes[dup.RequestID] != "DUPLICATE_REQUEST" || codes["ctl-dlq-bad"] != "UNDECODABLE" || codes[lost.RequestID] != "SCHEMA_NOT_FOUND" {
		t.Fatalf("codes %v", codes)
	}
	t.Logf("payoutsctl dlq list\n%s", k.run("dlq", "list"))

	verdicts := func() map[string]ReplayItem {
		var r ReplayResult
		decode(t, k.run("dlq", "replay", "--offset", positions(l), "--output", "json"), &r)
		m := map[string]ReplayItem{}
		for _, it := range r.Items {
			id := it.RequestID
			if id == "" {
				id = "ctl-dlq-bad"
			}
			m[id] = it
		}
		return m
	}
	first := verdicts()
	if it := first[dup.RequestID]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "DUPLICATE_REQUEST") {
		t.Errorf("the copy: %+v", it)
	}
	if it := first["ctl-dlq-bad"]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "does not decode") {
		t.Errorf("the bad bytes: %+v", it)
	}
	if it := first[lost.RequestID]; it.Verdict != VerdictReplayed {
		t.Fatalf("the lost request: %+v", it)
	}
	tr := k.waitStatus(lost.RequestID, payout.StatusSubmitted)
	if tr.Events[0].Status != "BATCHED" {
		t.Fatalf("history %+v", tr.Events)
	}
	if it := verdicts()[lost.RequestID]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "event(s) on") {
		t.Fatalf("second replay of the paid request: %+v", it)
	}
}

func positions(l DLQListResult) string {
	var ps []string
	for _, d := range l.Items {
		ps = append(ps, position(d.Partition, d.Offset))
	}
	return strings.Join(ps, ",")
}

// Rule 5 ("the request topic holds another record keyed by its requestId")
// read only the partition franz-go's murmur2 gives the requestId, but the
// request topic's producers are not ours: kcat and librdkafka (partitioner
// consistent_random) put a keyed record at crc32(key) % partitions.
//
// Sequence: R sits in the DLQ under a wrong key (SCHEMA_NOT_FOUND, so
// ingest never claimed R). The producer, fixed, sends R again with kcat:
// it lands in R's crc32 partition, which is not its murmur2 one, and
// ingest has not handled it yet (no status event). dlq replay looked in
// the murmur2 partition only, found nothing and republished R: two records
// of R on the request topic, two payments once the seen index has
// forgotten R (past DEDUPE_WINDOW, or after a Redis loss).
func TestReplayRefusedWhenTheProducerResentItThroughLibrdkafka(t *testing.T) {
	e := newDLQEnv(t)
	const n = 3 // newDLQEnv's request topic
	id := ""
	for i := 0; id == ""; i++ {
		k := fmt.Sprintf("order-%d-seller-42", i)
		// Not in any partition murmur2 gives it at n or fewer partitions.
		if !slices.Contains(keyPartitions(e.topics.Requests, []byte(k), n), int32(crc32.ChecksumIEEE([]byte(k))%n)) {
			id = k
		}
	}
	at := e.deadLetter("wrong-key", e.value(piiRequest(id)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	p := int32(crc32.ChecksumIEEE([]byte(id)) % n)
	kcat := e.k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	res := kcat.ProduceSync(context.Background(), &kgo.Record{Topic: e.topics.Requests, Partition: p, Key: []byte(id),
		Value: e.value(piiRequest(id))})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	resent := position(res[0].Record.Partition, res[0].Record.Offset)

	it := e.replay("--offset", at)[at]
	if it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "at "+resent+" (sent again)") {
		t.Errorf("%s re-sent at %s (crc32; murmur2 says partitions %v): %s %q, want refused as sent again",
			id, resent, keyPartitions(e.topics.Requests, []byte(id), n), it.Verdict, it.Reason)
	}
	if n := len(e.replayed()); n != 0 {
		t.Errorf("%d copies of %s republished beside the producer's own", n, id)
	}
}

// Rule 5 matched the request topic's records by their key only. But a dead
// letter can be replayed only when its key was not its requestId (ingest
// claims and rejects any requestId key of bytes it cannot decode), so the
// producer it came from keys its requests otherwise, or not at all, and
// sends a request again the same way.
//
// Sequence: R was sent under the seller's id as key with a schema the
// registry did not know yet (SCHEMA_NOT_FOUND; ingest claimed nothing).
// The producer, fixed, sends R again under the same key, and ingest has not
// committed it yet (lag, or its batching window is still open: no status
// event). dlq replay found no record keyed R and republished R: two live
// records of R on the request topic, which only ingest's seen index then
// tells apart (both batched if Redis loses the claim between the two).
// The originals of dead letters sit on the request topic too, and decode
// now: they are no re-send, or two dead letters of one request could never
// come back.
func TestReplayRefusedWhenTheProducerResentItUnderAnotherKey(t *testing.T) {
	e := newDLQEnv(t)
	// original writes a request record, then ingest's SCHEMA_NOT_FOUND
	// dead letter of it, and returns the dead letter's position.
	original := func(key []byte, id string) string {
		src := &kgo.Record{Topic: e.topics.Requests, Key: key, Value: e.value(piiRequest(id))}
		e.produce(src)
		return e.produce(events.DLQRecord(src, e.topics.RequestsDLQ, fmt.Errorf("decode: %w", events.ErrUnknownSchema)))
	}
	rekeyed := original([]byte("seller-42"), "dlq-resent-rekeyed")
	unkeyed := original(nil, "dlq-resent-unkeyed")
	twice1 := original([]byte("seller-7"), "dlq-twice-on-topic")
	twice2 := original([]byte("seller-8"), "dlq-twice-on-topic")
	resent := map[string]string{
		rekeyed: e.produce(&kgo.Record{Topic: e.topics.Requests, Key: []byte("seller-42"), Value: e.value(piiRequest("dlq-resent-rekeyed"))}),
		unkeyed: e.produce(&kgo.Record{Topic: e.topics.Requests, Value: e.value(piiRequest("dlq-resent-unkeyed"))}),
	}

	got := e.replay("--offset", strings.Join([]string{rekeyed, unkeyed, twice1, twice2}, ","))
	for at, to := range resent {
		if it := got[at]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "at "+to+" (sent again)") {
			t.Errorf("%s, sent again at %s under a key that is not its requestId: %s %q, want refused as sent again", it.RequestID, to, it.Verdict, it.Reason)
		}
	}
	n := 0
	for _, at := range []string{twice1, twice2} {
		switch it := got[at]; {
		case it.Verdict == VerdictReplayed:
			n++
		case it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "of this run replays the same requestId"):
			t.Errorf("dead letter %s of a request whose originals are both dead-lettered: %s %q", at, it.Verdict, it.Reason)
		}
	}
	if n != 1 {
		t.Errorf("%d of the two dead letters of dlq-twice-on-topic replayed, want 1", n)
	}
	if recs := e.replayed(); len(recs) != 1 || string(recs[0].Key) != "dlq-twice-on-topic" {
		t.Errorf("%d records replayed, want dlq-twice-on-topic's only", len(recs))
	}
}

// Ingest claims the key of a record it cannot decode (when the key is a
// valid requestId) and marks any later undecodable record under that key
// a copy, DUPLICATE_REQUEST with its decode error, whatever its bytes are.
// A producer that keys its requests by seller (the only kind whose dead
// letters can come back) therefore sees, while the registry does not know
// its schema, the first request of each seller dead-lettered as
// SCHEMA_NOT_FOUND and every later one of that seller as DUPLICATE_REQUEST.
//
// Sequence: R1 and R2, two requests of seller-42, both keyed seller-42,
// arrive in a schema the registry does not know yet. R1 claims seller-42
// (SCHEMA_NOT_FOUND, REJECTED under seller-42); R2 finds seller-42 held
// (DUPLICATE_REQUEST: <decode error>). The schema is registered, both
// decode now, and no event of R2 exists anywhere. dlq replay refused R2 as
// "a copy: the original of this requestId is already in the pipeline":
// R2's original is no request at all, only its seller's key, and R2 was
// lost for good. A copy judged on its requestId (the header exactly
// DUPLICATE_REQUEST, or a key that is its requestId) is still refused.
func TestReplayOfACopyJudgedOnItsKeyOnly(t *testing.T) {
	e := newDLQEnv(t)
	schemaErr := fmt.Errorf("decode: %w", events.ErrUnknownSchema)
	deadLetter := func(key, id string, cause error) string {
		src := &kgo.Record{Topic: e.topics.Requests, Key: []byte(key), Value: e.value(piiRequest(id))}
		e.produce(src)
		return e.produce(events.DLQRecord(src, e.topics.RequestsDLQ, cause))
	}
	r1 := deadLetter("seller-42", "order-1-seller-42", schemaErr)
	r2 := deadLetter("seller-42", "order-2-seller-42", fmt.Errorf("%w: %w", errors.New(string(payout.ReasonDuplicateRequest)), schemaErr))
	// Ingest's REJECTED of R1's record, under the key it claimed.
	e.produce(statusRecord(t, e.codec, e.topics.Status, "seller-42", payout.StatusRejected, time.Now()))
	// A true copy judged on its requestId: keyed by it, bytes undecodable
	// then (its original, under that key, was paid).
	paid := deadLetter("order-3-seller-42", "order-3-seller-42", fmt.Errorf("%w: %w", errors.New(string(payout.ReasonDuplicateRequest)), schemaErr))
	// A decodable copy under another key: ingest judged it on its requestId.
	copied := deadLetter("seller-7", "order-4-seller-7", errors.New(string(payout.ReasonDuplicateRequest)))

	got := e.replay("--offset", strings.Join([]string{r1, r2, paid, copied}, ","))
	for _, at := range []string{r1, r2} {
		if it := got[at]; it.Verdict != VerdictReplayed {
			t.Errorf("dead letter %s of %s (%s), never batched, rejected or paid: %s %q, want replayed", at, it.RequestID, it.Code, it.Verdict, it.Reason)
		}
	}
	for _, at := range []string{paid, copied} {
		if it := got[at]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "DUPLICATE_REQUEST copy") {
			t.Errorf("dead letter %s of %s, a copy judged on its requestId: %s %q, want refused as a copy", at, it.RequestID, it.Verdict, it.Reason)
		}
	}
	ids := map[string]bool{}
	for _, r := range e.replayed() {
		ids[string(r.Key)] = true
	}
	if len(ids) != 2 || !ids["order-1-seller-42"] || !ids["order-2-seller-42"] {
		t.Errorf("replayed %v, want order-1-seller-42 and order-2-seller-42", ids)
	}
	// Run again: both are refused now (already replayed).
	for _, at := range []string{r1, r2} {
		if it := e.replay("--offset", at)[at]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "already replayed") {
			t.Errorf("second run, %s: %s %q", at, it.Verdict, it.Reason)
		}
	}
}
