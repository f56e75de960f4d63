package events

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

func TestTopicsDefaultsAndEnv(t *testing.T) {
	d := DefaultTopics()
	want := Topics{"payouts.requests.v1", "payouts.batches.v1", "payouts.batches.deferred.v1", "payouts.status.v1", "payouts.batch-status.v1", "payouts.requests.dlq.v1",
		"payouts.dispatcher.starts.v1"}
	if d != want {
		t.Fatalf("defaults = %+v", d)
	}
	env := map[string]string{"TOPIC_STATUS": "acme.status", "TOPIC_REQUESTS_DLQ": "acme.dlq"}
	got, err := TopicsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want.Status, want.RequestsDLQ = "acme.status", "acme.dlq"
	if got != want {
		t.Fatalf("from env = %+v", got)
	}
	var tp Topics
	names := []string{}
	for _, b := range tp.Bindings() {
		*b.Field = b.Default
		names = append(names, b.Env)
	}
	if tp != DefaultTopics() {
		t.Fatalf("bindings do not cover every field: %+v", tp)
	}
	if strings.Join(names, ",") != "TOPIC_REQUESTS,TOPIC_BATCHES,TOPIC_BATCHES_DEFERRED,TOPIC_STATUS,TOPIC_BATCH_STATUS,TOPIC_REQUESTS_DLQ,TOPIC_DISPATCHER_STARTS" {
		t.Fatalf("env names = %v", names)
	}
}

func TestTopicsValidate(t *testing.T) {
	cases := []struct {
		env, value, wantEnv string
	}{
		{"TOPIC_BATCHES", "bad topic", "TOPIC_BATCHES"},
		{"TOPIC_STATUS", strings.Repeat("a", 250), "TOPIC_STATUS"},
		{"TOPIC_REQUESTS", "..", "TOPIC_REQUESTS"},
		{"TOPIC_BATCH_STATUS", "payouts/x", "TOPIC_BATCH_STATUS"},
		{"TOPIC_BATCHES", "payouts.requests.v1", "TOPIC_BATCHES"}, // same as requests
	}
	for _, tc := range cases {
		_, err := TopicsFromEnv(func(k string) string {
			if k == tc.env {
				return tc.value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tc.wantEnv) {
			t.Errorf("%s=%q: %v", tc.env, tc.value, err)
		}
	}
	if err := ValidateTopicName(strings.Repeat("a", 249)); err != nil {
		t.Errorf("249 chars: %v", err)
	}
	if err := ValidateTopicName("A-z_0.9"); err != nil {
		t.Errorf("legal chars: %v", err)
	}
}

func TestDLQRecord(t *testing.T) {
	src := &kgo.Record{
		Topic: "payouts.requests.v1", Partition: 7, Offset: 123456, Key: []byte("req-1"), Value: []byte{0xC3, 0x01, 9},
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc")}, {Key: HeaderError, Value: []byte("spoofed")}},
	}
	c := newSOECodec(t)
	var r payout.Request
	derr := c.DecodeRequest(src.Value, &r)
	rec := DLQRecord(src, "payouts.requests.dlq.v1", derr)
	if rec.Topic != "payouts.requests.dlq.v1" || string(rec.Key) != "req-1" || string(rec.Value) != string(src.Value) {
		t.Fatalf("record = %+v", rec)
	}
	h := map[string][]string{}
	for _, x := range rec.Headers {
		h[x.Key] = append(h[x.Key], string(x.Value))
	}
	if len(h[HeaderError]) != 1 || h[HeaderError][0] != derr.Error() {
		t.Fatalf("error header = %q", h[HeaderError])
	}
	if h[HeaderSourceTopic][0] != "payouts.requests.v1" || h[HeaderSourcePartition][0] != "7" || h[HeaderSourceOffset][0] != strconv.Itoa(123456) {
		t.Fatalf("source headers = %v", h)
	}
	if h["traceparent"][0] != "00-abc" {
		t.Fatalf("original header dropped")
	}
	long := DLQRecord(src, "d", errors.New(strings.Repeat("x", 5000)+"\n\x00"))
	for _, x := range long.Headers {
		if x.Key == HeaderError && (len(x.Value) > MaxDLQErrorLen || strings.ContainsAny(string(x.Value), "\n\x00")) {
			t.Fatalf("error header not bounded/sanitized: %d bytes", len(x.Value))
		}
	}
}

func TestKeys(t *testing.T) {
	if string(RequestKey(fullRequest())) != "req-0001-abc" ||
		string(BatchKey(fullBatch(1))) != "batch-acc-origin-1-0001" ||
		string(StatusChangeKey(fullStatusChange())) != "req-0001-abc" ||
		string(BatchStatusChangeKey(fullBatchStatusChange())) != "batch-1" {
		t.Fatal("keys")
	}
}
