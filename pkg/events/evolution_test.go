package events

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// oldRequestSchema is PayoutRequested as it would have been before bankId
// and metadata were added: the current reader must read its data.
func oldRequestSchema(t testing.TB) string {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal([]byte(Schema(RecordRequest)), &s); err != nil {
		t.Fatal(err)
	}
	s["fields"] = dropField(s["fields"].([]any), "metadata")
	for _, f := range s["fields"].([]any) {
		fm := f.(map[string]any)
		if fm["name"] == "beneficiary" {
			ben := fm["type"].(map[string]any)
			ben["fields"] = dropField(ben["fields"].([]any), "bankId")
		}
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// newerStatusSchema is PayoutStatusChanged with one more optional field, as a
// newer producer would write it.
func newerStatusSchema(t testing.TB) string {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal([]byte(Schema(RecordStatusChange)), &s); err != nil {
		t.Fatal(err)
	}
	fields := s["fields"].([]any)
	// Insert in the middle, so skipping it is really exercised.
	extra := map[string]any{"name": "note", "type": []any{"null", "string"}, "default": nil, "doc": "new"}
	s["fields"] = append(fields[:3:3], append([]any{extra}, fields[3:]...)...)
	b, _ := json.Marshal(s)
	return string(b)
}

func dropField(fields []any, name string) []any {
	out := fields[:0:0]
	for _, f := range fields {
		if f.(map[string]any)["name"] != name {
			out = append(out, f)
		}
	}
	return out
}

func soeFrame(t testing.TB, schemaJSON string, v any) []byte {
	t.Helper()
	s := avro.MustParse(schemaJSON)
	body, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := s.FingerprintUsing(avro.CRC64AvroLE)
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{0xC3, 0x01}, fp...), body...)
}

func confluentFrame(t testing.TB, schemaJSON string, id int, v any) []byte {
	t.Helper()
	body, err := avro.Marshal(avro.MustParse(schemaJSON), v)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), body...)
}

// statusWithNote is what a newer producer's struct looks like.
type statusWithNote struct {
	payout.StatusChange
	Note *string `avro:"note"`
}

func TestEvolutionSOE(t *testing.T) {
	old := oldRequestSchema(t)
	data := soeFrame(t, old, fullRequest()) // bankId and metadata are not in old data
	want := fullRequest()
	want.Beneficiary.BankID, want.Metadata = nil, nil

	c := newSOECodec(t)
	var got payout.Request
	if err := c.DecodeRequest(data, &got); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("old data before registering its schema: %v, want ErrUnknownSchema", err)
	}
	if err := c.RegisterWriterSchema(old); err != nil {
		t.Fatal(err)
	}
	if err := c.DecodeRequest(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("old data read as %+v\nwant %+v", got, want)
	}

	// A newer writer: its extra field is skipped, everything else read.
	newer := newerStatusSchema(t)
	v := statusWithNote{StatusChange: *fullStatusChange(), Note: ptr("hello")}
	data = soeFrame(t, newer, &v)
	c2 := newSOECodec(t, WithWriterSchemas(newer))
	var sc payout.StatusChange
	if err := c2.DecodeStatusChange(data, &sc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&sc, fullStatusChange()) {
		t.Fatalf("newer data read as %+v", sc)
	}
}

func TestRegisterWriterSchemaRejects(t *testing.T) {
	c := newSOECodec(t)
	// A new enum symbol is a breaking change for our readers.
	var s map[string]any
	_ = json.Unmarshal([]byte(Schema(RecordStatusChange)), &s)
	for _, f := range s["fields"].([]any) {
		fm := f.(map[string]any)
		if fm["name"] == "status" {
			e := fm["type"].(map[string]any)
			e["symbols"] = append(e["symbols"].([]any), "REFUNDED")
		}
	}
	b, _ := json.Marshal(s)
	if err := c.RegisterWriterSchema(string(b)); !errors.Is(err, ErrIncompatibleSchema) {
		t.Fatalf("new enum symbol: %v", err)
	}
	if err := c.RegisterWriterSchema(`{"type":"record","name":"Other","namespace":"x","fields":[]}`); !errors.Is(err, ErrIncompatibleSchema) {
		t.Fatalf("foreign record: %v", err)
	}
	if err := c.RegisterWriterSchema(`{`); err == nil {
		t.Fatal("bad JSON accepted")
	}
	if err := c.RegisterWriterSchema(Schema(RecordBatch)); err != nil {
		t.Fatalf("current schema: %v", err)
	}
}

func TestEvolutionConfluent(t *testing.T) {
	old := oldRequestSchema(t)
	c, srv := newRegistryCodec(t)
	// The old schema was registered first in production; here it comes
	// after, under another subject, which gives it its own id all the same.
	oldID, err := srv.Register("legacy-requests-value", old)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := c.SchemaID(RecordRequest); cur == oldID {
		t.Fatal("old and current schema share an id")
	}
	data := confluentFrame(t, old, oldID, fullRequest())
	want := fullRequest()
	want.Beneficiary.BankID, want.Metadata = nil, nil
	for range 3 {
		var got payout.Request
		if err := c.DecodeRequest(data, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("old data read as %+v", got)
		}
	}
	if n := srv.Calls("GET /schemas/ids/{id}"); n != 1 {
		t.Fatalf("schema id fetched %d times, want 1 (cached)", n)
	}
	// The registry enforces BACKWARD compatibility on a subject: the current
	// schema may follow the old one.
	if _, err := srv.Register("legacy-requests-value", Schema(RecordRequest)); err != nil {
		t.Fatalf("current schema not backward compatible with the old one: %v", err)
	}
}

func TestConfluentErrors(t *testing.T) {
	c, srv := newRegistryCodec(t, WithNotFoundRetry(0))
	body := func(id int) []byte { return confluentFrame(t, Schema(RecordRequest), id, minimalRequest()) }
	var r payout.Request

	// An id the registry never issued: with no not-found retry, unknown at
	// once (TestSchemaNotFoundIsRetriedForABoundedTime covers the retry).
	if err := c.DecodeRequest(body(9999), &r); !errors.Is(err, ErrUnknownSchema) || !Permanent(err) {
		t.Fatalf("unknown id: %v", err)
	}
	// A PayoutBatch id on the requests topic.
	batchID, _ := c.SchemaID(RecordBatch)
	if err := c.DecodeRequest(body(batchID), &r); !errors.Is(err, ErrIncompatibleSchema) {
		t.Fatalf("batch schema id for a request: %v", err)
	}
	// A registry outage is transient, not bad data.
	other, err := srv.Register("x-value", newerStatusSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	srv.FailWith(503)
	var sc payout.StatusChange
	err = c.DecodeStatusChange(confluentFrame(t, Schema(RecordStatusChange), other, minimalStatusChange()), &sc)
	if !errors.Is(err, ErrRegistryUnavailable) || Permanent(err) {
		t.Fatalf("registry down: %v", err)
	}
	// Known ids keep working while the registry is down.
	good, _ := c.AppendRequest(nil, minimalRequest())
	if err := c.DecodeRequest(good, &r); err != nil {
		t.Fatalf("current id with registry down: %v", err)
	}
	srv.FailWith(0)
	// Without any registry, a Confluent value has an unknown schema.
	soe := newSOECodec(t)
	if err := soe.DecodeRequest(good, &r); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("confluent bytes, no registry: %v", err)
	}
}
