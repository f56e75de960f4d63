package ingest

import (
	"context"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// withRegistry makes the fixture's codec use a registrytest server, and
// returns the server.
func (f *fixture) withRegistry(opts ...events.Option) *registrytest.Server {
	f.t.Helper()
	srv := registrytest.NewServer()
	f.t.Cleanup(srv.Close)
	c, err := events.NewCodec(context.Background(), append([]events.Option{events.WithRegistry(srv.URL), events.WithTopics(f.topics)}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.codec = c
	return srv
}

// newerSchemaRecord registers a newer PayoutRequested (one optional field
// more) under the requests subject, and returns r written with it: a schema
// id the engine's codec must fetch from the registry.
func (f *fixture) newerSchemaRecord(srv *registrytest.Server, r *payout.Request) *kgo.Record {
	f.t.Helper()
	js := events.Schema(events.RecordRequest)
	i := strings.LastIndex(js, "]")
	newer := js[:i] + `,{"name":"laggingNote","type":["null","string"],"default":null}` + js[i:]
	id, err := srv.Register(f.topics.Requests+"-value", newer)
	if err != nil {
		f.t.Fatal(err)
	}
	cur, err := f.codec.AppendRequest(nil, r)
	if err != nil {
		f.t.Fatal(err)
	}
	v := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	v = append(v, cur[5:]...)
	v = append(v, 0) // laggingNote: null
	return &kgo.Record{Key: []byte(r.RequestID), Value: v}
}

// Issue 15 item 4: a registry follower that 404s a new schema id for its
// first lookups must not send valid requests to the DLQ (the old engine
// dead-lettered at the first 404 and committed the offset). The window is
// re-read with backoff until the registry serves the id.
func TestLaggingRegistryDoesNotDeadLetterValidRequests(t *testing.T) {
	f := newFixture(t, 1)
	srv := f.withRegistry()
	reqs, ids := bulky(10, 0)
	late := request(500, "acc-big", 0)
	srv.LagIDs(3)
	f.produce(reqs[:5], f.newerSchemaRecord(srv, &late))
	f.produce(reqs[5:])
	stop := f.run(f.engine("ingest-lagging-registry", nil))
	o := f.read(len(reqs) + 1)
	stop()
	o.assertExactlyOnce(t, append(ids, late.RequestID), nil)
	if len(o.dlq) != 0 {
		t.Fatalf("%d requests dead-lettered, want none", len(o.dlq))
	}
	if n := srv.Calls("GET /schemas/ids/{id}"); n < 4 {
		t.Errorf("the id was fetched %d times, want the 3 lagging answers and a good one", n)
	}
}

// Past SCHEMA_REGISTRY_NOT_FOUND_RETRY the request goes to the DLQ, and,
// its key being a requestId, the marketplace hears of it: REJECTED with
// SCHEMA_NOT_FOUND. The requests around it flow.
func TestSchemaNotFoundPastBoundIsDeadLetteredAndRejected(t *testing.T) {
	f := newFixture(t, 1)
	srv := f.withRegistry(events.WithNotFoundRetry(time.Second))
	reqs, ids := bulky(10, 0)
	lost := request(501, "acc-big", 0)
	srv.LagIDs(-1)
	f.produce(reqs[:5], f.newerSchemaRecord(srv, &lost))
	f.produce(reqs[5:])
	stop := f.run(f.engine("ingest-unknown-schema", nil))
	o := f.read(len(reqs) + 1)
	stop()
	o.assertExactlyOnce(t, ids, []string{lost.RequestID})
	if c := *o.statuses[lost.RequestID][0].ReasonCode; c != string(ReasonSchemaNotFound) {
		t.Errorf("rejected for %s, want %s", c, ReasonSchemaNotFound)
	}
	if len(o.dlq) != 1 || string(o.dlq[0].Key) != lost.RequestID {
		t.Fatalf("DLQ holds %d records, want the one request", len(o.dlq))
	}
}

// A record whose Confluent schema id names a schema no codec here can read
// (a PROTOBUF schema: ids are global across schema types in a shared
// registry) blocked its partition for ever: the decode error was
// transient, so every window that read the record aborted and re-read it.
// It now goes to the DLQ at once, and, its key being a requestId, the
// marketplace hears REJECTED UNDECODABLE; the requests around it are
// batched.
func TestRecordOfANonAvroSchemaIsDeadLetteredAndItsPartitionFlows(t *testing.T) {
	f := newFixture(t, 1)
	reg := registrytest.New()
	const protobufID = 9999
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && req.URL.Path == "/schemas/ids/9999" {
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			_, _ = w.Write([]byte(`{"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";\nmessage Payout { string id = 1; }\n"}`))
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	c, err := events.NewCodec(context.Background(), events.WithRegistry(srv.URL), events.WithTopics(f.topics))
	if err != nil {
		t.Fatal(err)
	}
	f.codec = c

	reqs, ids := bulky(10, 0)
	v := binary.BigEndian.AppendUint32([]byte{0}, protobufID)
	v = append(v, 0x0a, 0x03, 'a', 'b', 'c') // a protobuf body
	const badID = "req-protobuf-1"
	f.produce(reqs[:5], &kgo.Record{Key: []byte(badID), Value: v})
	f.produce(reqs[5:])
	stop := f.run(f.engine("ingest-protobuf-schema", nil))
	o := f.read(len(reqs) + 1)
	stop()
	o.assertExactlyOnce(t, ids, []string{badID})
	if code := *o.statuses[badID][0].ReasonCode; code != string(ReasonUndecodable) {
		t.Errorf("rejected for %s, want %s", code, ReasonUndecodable)
	}
	if len(o.dlq) != 1 || string(o.dlq[0].Key) != badID {
		t.Fatalf("DLQ holds %d records, want the one request", len(o.dlq))
	}
	if e := dlqErrors(o.dlq)[badID]; len(e) != 1 || !strings.Contains(e[0], "PROTOBUF") {
		t.Errorf("dead letter's error %q does not name the schema's type", e)
	}
}

// A registry that is down (503) while a record of a new schema id waits
// must not cost that request: the window is re-read until the registry
// answers, nothing goes to the DLQ, and every request is batched once.
func TestRegistryOutageStallsTheWindowUntilItAnswers(t *testing.T) {
	f := newFixture(t, 1)
	srv := f.withRegistry(events.WithNotFoundRetry(0))
	reqs, ids := bulky(10, 0)
	late := request(502, "acc-big", 0)
	f.produce(reqs[:5], f.newerSchemaRecord(srv, &late))
	f.produce(reqs[5:])
	srv.FailWith(http.StatusServiceUnavailable)
	stop := f.run(f.engine("ingest-registry-outage", nil))
	// Three fetches: the window was re-read at least twice.
	deadline := time.Now().Add(30 * time.Second)
	for srv.Calls("GET /schemas/ids/{id}") < 3 {
		if dlq := f.kafka.ReadAll(t, f.topics.RequestsDLQ); len(dlq) > 0 {
			t.Fatalf("dead-lettered while the registry is down: %v", dlqErrors(dlq))
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine never asked the registry for the new id")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := f.kafka.ReadAll(t, f.topics.Status); len(st) > 5 {
		t.Fatalf("%d status events while the registry is down; the window holding the new id must wait", len(st))
	}
	srv.FailWith(0)
	o := f.read(len(reqs) + 1)
	stop()
	o.assertExactlyOnce(t, append(ids, late.RequestID), nil)
	if len(o.dlq) != 0 {
		t.Fatalf("%d requests dead-lettered during a registry outage, want none", len(o.dlq))
	}
}
