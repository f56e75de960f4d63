package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// codecCase round-trips one record value through a codec.
type codecCase struct {
	name   string
	encode func(c *Codec, dst []byte) ([]byte, error)
	decode func(c *Codec, b []byte) (any, error) // returns the decoded value (pointer)
	want   any                                   // pointer to the expected value
}

func requestCase(name string, v *payout.Request) codecCase {
	return codecCase{name,
		func(c *Codec, dst []byte) ([]byte, error) { return c.AppendRequest(dst, v) },
		func(c *Codec, b []byte) (any, error) {
			var r payout.Request
			err := c.DecodeRequest(b, &r)
			return &r, err
		},
		v}
}

func batchCase(name string, v *payout.Batch) codecCase {
	return codecCase{name,
		func(c *Codec, dst []byte) ([]byte, error) { return c.AppendBatch(dst, v) },
		func(c *Codec, b []byte) (any, error) { var r payout.Batch; err := c.DecodeBatch(b, &r); return &r, err },
		v}
}

func statusCase(name string, v *payout.StatusChange) codecCase {
	return codecCase{name,
		func(c *Codec, dst []byte) ([]byte, error) { return c.AppendStatusChange(dst, v) },
		func(c *Codec, b []byte) (any, error) {
			var r payout.StatusChange
			err := c.DecodeStatusChange(b, &r)
			return &r, err
		},
		v}
}

func batchStatusCase(name string, v *payout.BatchStatusChange) codecCase {
	return codecCase{name,
		func(c *Codec, dst []byte) ([]byte, error) { return c.AppendBatchStatusChange(dst, v) },
		func(c *Codec, b []byte) (any, error) {
			var r payout.BatchStatusChange
			err := c.DecodeBatchStatusChange(b, &r)
			return &r, err
		},
		v}
}

func allCases() []codecCase {
	return []codecCase{
		requestCase("PayoutRequested/full", fullRequest()),
		requestCase("PayoutRequested/typical", typicalRequest()),
		requestCase("PayoutRequested/minimal", minimalRequest()),
		requestCase("PayoutRequested/pix", pixRequest()),
		batchCase("PayoutBatch/full", fullBatch(5)),
		batchCase("PayoutBatch/minimal", minimalBatch()),
		statusCase("PayoutStatusChanged/full", fullStatusChange()),
		statusCase("PayoutStatusChanged/minimal", minimalStatusChange()),
		statusCase("PayoutStatusChanged/returned", returnedStatusChange()),
		batchStatusCase("BatchStatusChanged/full", fullBatchStatusChange()),
		batchStatusCase("BatchStatusChanged/minimal", minimalBatchStatusChange()),
	}
}

func TestRoundTrip(t *testing.T) {
	soe := newSOECodec(t)
	conf, _ := newRegistryCodec(t)
	for _, fr := range []struct {
		name   string
		c      *Codec
		header func(b []byte) bool
	}{
		{"soe", soe, func(b []byte) bool { return len(b) > 10 && b[0] == 0xC3 && b[1] == 0x01 }},
		{"confluent", conf, func(b []byte) bool { return len(b) > 5 && b[0] == 0x00 }},
	} {
		for _, tc := range allCases() {
			t.Run(fr.name+"/"+tc.name, func(t *testing.T) {
				prefix := []byte("keep")
				b, err := tc.encode(fr.c, prefix)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(b, []byte("keep")) {
					t.Fatalf("Append dropped dst")
				}
				b = b[len(prefix):]
				if !fr.header(b) {
					t.Fatalf("wrong framing header % x", b[:min(len(b), 10)])
				}
				got, err := tc.decode(fr.c, b)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("round trip mismatch\n got %+v\nwant %+v", got, tc.want)
				}
			})
		}
	}
}

func TestFramingHeaders(t *testing.T) {
	soe := newSOECodec(t)
	b, err := soe.AppendRequest(nil, minimalRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(b[2:10]); got != Fingerprint(RecordRequest) {
		t.Fatalf("SOE header fingerprint %x, want %x", got, Fingerprint(RecordRequest))
	}
	if soe.Framing() != FramingSOE {
		t.Fatalf("framing %v", soe.Framing())
	}
	conf, srv := newRegistryCodec(t)
	b, err = conf.AppendRequest(nil, minimalRequest())
	if err != nil {
		t.Fatal(err)
	}
	id, ok := conf.SchemaID(RecordRequest)
	if !ok || int(binary.BigEndian.Uint32(b[1:5])) != id {
		t.Fatalf("Confluent header id %d, SchemaID %d %v", binary.BigEndian.Uint32(b[1:5]), id, ok)
	}
	// The schema is registered under <topic>-value; the batch under both
	// batch topics, with the same id.
	for subject, rec := range map[string]RecordType{
		"payouts.requests.v1-value":         RecordRequest,
		"payouts.batches.v1-value":          RecordBatch,
		"payouts.batches.deferred.v1-value": RecordBatch,
		"payouts.status.v1-value":           RecordStatusChange,
		"payouts.batch-status.v1-value":     RecordBatchStatusChange,
	} {
		got, err := srv.Register(subject, Schema(rec))
		want, _ := conf.SchemaID(rec)
		if err != nil || got != want {
			t.Errorf("subject %s: id %d err %v, want %d", subject, got, err, want)
		}
	}
}

// TestDecodeAutoDetect: one Decode call reads both framings.
func TestDecodeAutoDetect(t *testing.T) {
	soe := newSOECodec(t)
	conf, _ := newRegistryCodec(t)
	want := fullRequest()
	for name, enc := range map[string]*Codec{"soe": soe, "confluent": conf} {
		b, err := enc.AppendRequest(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		var got payout.Request
		if err := conf.DecodeRequest(b, &got); err != nil {
			t.Fatalf("%s bytes: %v", name, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("%s bytes decoded to %+v", name, got)
		}
		f, err := DetectFraming(b)
		if err != nil || f.String() != name {
			t.Fatalf("DetectFraming(%s) = %v, %v", name, f, err)
		}
	}
}

func TestPinnedFingerprints(t *testing.T) {
	// A change here is a change of the wire contract: the schema it replaces
	// goes to schemas/previous (so every reader still reads its data), and
	// every reader must be upgraded before any writer moves.
	want := map[RecordType]uint64{
		RecordRequest:           0xb8dc924fc2a517a7,
		RecordBatch:             0xf27d8cc6ae01e2d7,
		RecordStatusChange:      0xe51d66eb2835c663,
		RecordBatchStatusChange: 0x10306492276843c0,
	}
	for _, r := range Records {
		if got := Fingerprint(r); got != want[r] {
			t.Errorf("%s fingerprint = 0x%016x, pinned 0x%016x", r, got, want[r])
		}
	}
}

// TestSchemasContract checks the schema files against the contract: names,
// docs everywhere, namespaces, and that each file parses alone.
func TestSchemasContract(t *testing.T) {
	for _, r := range Records {
		js := Schema(r)
		s, err := avro.ParseWithCache(js, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatalf("%s does not parse alone: %v", r, err)
		}
		if got := s.(avro.NamedSchema).FullName(); got != "co.payouts.v1."+r.String() {
			t.Errorf("%s full name %s", r, got)
		}
		var doc any
		if err := json.Unmarshal([]byte(js), &doc); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if v["type"] == "record" || v["type"] == "enum" {
					if d, _ := v["doc"].(string); d == "" {
						t.Errorf("%s: %s %v has no doc", r, path, v["name"])
					}
				}
				if fields, ok := v["fields"].([]any); ok {
					for _, f := range fields {
						fm := f.(map[string]any)
						if d, _ := fm["doc"].(string); d == "" {
							t.Errorf("%s: field %s.%v has no doc", r, path, fm["name"])
						}
						walk(path+"."+fm["name"].(string), fm["type"])
					}
				}
				for _, k := range []string{"items", "values"} {
					if x, ok := v[k]; ok {
						walk(path, x)
					}
				}
			case []any:
				for _, x := range v {
					walk(path, x)
				}
			}
		}
		walk(r.String(), doc)
	}
	// Field names and defaults the contract names.
	req := avro.MustParse(Schema(RecordRequest)).(*avro.RecordSchema)
	fields := map[string]*avro.Field{}
	for _, f := range req.Fields() {
		fields[f.Name()] = f
	}
	for _, n := range []string{"requestId", "originAccountId", "paymentType", "beneficiary", "amountInCents", "currency", "dispersionDatetime", "recurring", "requestedAt", "metadata"} {
		if fields[n] == nil {
			t.Errorf("PayoutRequested lacks %s", n)
		}
	}
	if f := fields["currency"]; f == nil || f.Default() != "COP" {
		t.Errorf("currency default = %v", f.Default())
	}
	if f := fields["metadata"]; f == nil || !f.HasDefault() {
		t.Errorf("metadata has no default")
	}
	if f := fields["dispersionDatetime"]; f == nil || !f.HasDefault() || f.Default() != nil {
		t.Errorf("dispersionDatetime must default to null")
	}
	batch := avro.MustParse(Schema(RecordBatch)).(*avro.RecordSchema)
	for _, f := range batch.Fields() {
		if f.Name() == "attempt" && f.Default() != 0 {
			t.Errorf("attempt default = %v", f.Default())
		}
	}
	// What the rails added (#19): each a nullable string with a null
	// default, so records written before still decode; rail is a string,
	// not an enum, so an unknown rail decodes and ingest can reject it.
	nullableString := func(where string, f *avro.Field) {
		t.Helper()
		u, ok := f.Type().(*avro.UnionSchema)
		if !ok || len(u.Types()) != 2 || u.Types()[0].Type() != avro.Null || u.Types()[1].Type() != avro.String ||
			!f.HasDefault() || f.Default() != nil {
			t.Errorf("%s.%s must be [\"null\", \"string\"] with a null default, is %s", where, f.Name(), f.Type())
		}
	}
	field := func(rs *avro.RecordSchema, name string) *avro.Field {
		for _, f := range rs.Fields() {
			if f.Name() == name {
				return f
			}
		}
		t.Fatalf("%s lacks %s", rs.Name(), name)
		return nil
	}
	benFields := []string{"phone", "pixKey", "branch", "branchDigit", "accountDigit"}
	checkBeneficiary := func(where string, ben *avro.RecordSchema) {
		for _, n := range benFields {
			nullableString(where, field(ben, n))
		}
		syms := field(ben, "legalIdType").Type().(*avro.EnumSchema).Symbols()
		if !slices.Equal(syms, []string{"CC", "NIT", "CE", "PP", "TI", "DNI", "CPF", "CNPJ"}) {
			t.Errorf("%s legalIdType symbols %v", where, syms)
		}
	}
	checkBeneficiary("PayoutRequested.beneficiary", field(req, "beneficiary").Type().(*avro.RecordSchema))
	tx := field(batch, "transactions").Type().(*avro.ArraySchema).Items().(*avro.RecordSchema)
	checkBeneficiary("PayoutBatch.transactions.beneficiary", field(tx, "beneficiary").Type().(*avro.RecordSchema))
	for _, r := range Records {
		nullableString(r.String(), field(avro.MustParse(Schema(r)).(*avro.RecordSchema), "rail"))
	}
	status := field(avro.MustParse(Schema(RecordStatusChange)).(*avro.RecordSchema), "status").Type().(*avro.EnumSchema).Symbols()
	if status[len(status)-1] != "RETURNED" {
		t.Errorf("PayoutStatusChanged.status symbols %v: RETURNED must be appended", status)
	}
}

func TestEnumSymbolsMatchDomain(t *testing.T) {
	sc := avro.MustParse(Schema(RecordStatusChange)).(*avro.RecordSchema)
	for _, f := range sc.Fields() {
		if f.Name() == "status" {
			syms := f.Type().(*avro.EnumSchema).Symbols()
			if len(syms) != len(payout.Statuses) {
				t.Fatalf("status enum has %d symbols, payout.Statuses %d", len(syms), len(payout.Statuses))
			}
			for i, s := range payout.Statuses {
				if syms[i] != string(s) {
					t.Errorf("status symbol %d = %s, domain %s", i, syms[i], s)
				}
			}
		}
	}
	bs := avro.MustParse(Schema(RecordBatchStatusChange)).(*avro.RecordSchema)
	for _, f := range bs.Fields() {
		if f.Name() == "status" {
			syms := f.Type().(*avro.EnumSchema).Symbols()
			for i, s := range payout.BatchStatuses {
				if syms[i] != string(s) {
					t.Errorf("batch status symbol %d = %s, domain %s", i, syms[i], s)
				}
			}
		}
	}
}

// TestDecodeDoesNotAlias: decoding into a reused struct must not change
// anything a copy of the previous result still points at.
func TestDecodeDoesNotAlias(t *testing.T) {
	c := newSOECodec(t)
	a, _ := c.AppendRequest(nil, fullRequest())
	other := fullRequest()
	other.Beneficiary.BankID = ptr("other-bank")
	other.DispersionDatetime = ptr(ms("2027-01-01T00:00:00Z"))
	other.Recurring.Months = 1
	other.Metadata = map[string]string{"orderId": "zzz"}
	b, _ := c.AppendRequest(nil, other)

	var r payout.Request
	if err := c.DecodeRequest(a, &r); err != nil {
		t.Fatal(err)
	}
	kept := r // what a batch accumulator would hold on to
	if err := c.DecodeRequest(b, &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&kept, fullRequest()) {
		t.Fatalf("earlier result changed by a later decode: %+v", kept)
	}
	if !reflect.DeepEqual(&r, other) {
		t.Fatalf("second decode wrong: %+v", r)
	}
	// A decode that fails leaves a zero struct, not half of the old one.
	if err := c.DecodeRequest(b[:len(b)-3], &r); err == nil {
		t.Fatal("truncated value decoded")
	}
	if !reflect.DeepEqual(r, payout.Request{}) {
		t.Fatalf("failed decode left %+v", r)
	}

	bb, _ := c.AppendBatch(nil, fullBatch(3))
	var batch payout.Batch
	if err := c.DecodeBatch(bb, &batch); err != nil {
		t.Fatal(err)
	}
	keptBatch := batch
	b2 := fullBatch(3)
	b2.Transactions[0].Beneficiary.AccountNumber = "999"
	b2.Transactions[0].Beneficiary.BankID = ptr("changed")
	bb2, _ := c.AppendBatch(nil, b2)
	if err := c.DecodeBatch(bb2, &batch); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&keptBatch, fullBatch(3)) {
		t.Fatalf("earlier batch changed by a later decode")
	}
}

func TestEmptyMetadataDecodesNil(t *testing.T) {
	c := newSOECodec(t)
	r := minimalRequest()
	r.Metadata = map[string]string{}
	b, _ := c.AppendRequest(nil, r)
	var got payout.Request
	got.Metadata = map[string]string{"stale": "x"}
	if err := c.DecodeRequest(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Metadata != nil {
		t.Fatalf("metadata = %#v, want nil", got.Metadata)
	}
}

func TestEncodeErrors(t *testing.T) {
	c := newSOECodec(t)
	r := minimalRequest()
	r.PaymentType = "CASH"
	dst := []byte("x")
	out, err := c.AppendRequest(dst, r)
	if err == nil || !bytes.Equal(out, dst) {
		t.Fatalf("bad enum encoded: %v %q", err, out)
	}
	if _, err := c.AppendRequest(nil, nil); err == nil {
		t.Fatal("nil request encoded")
	}
	s := minimalStatusChange()
	s.PreviousStatus = ptr(payout.Status("LOST"))
	if _, err := c.AppendStatusChange(nil, s); err == nil {
		t.Fatal("bad previous status encoded")
	}
}

func TestNewCodecRejectsBadRegistryURL(t *testing.T) {
	for _, u := range []string{"localhost:8081", "ftp://x", "http://"} {
		_, err := NewCodec(context.Background(), WithRegistry(u))
		if err == nil || !strings.Contains(err.Error(), "SCHEMA_REGISTRY_URL") {
			t.Errorf("WithRegistry(%q): %v", u, err)
		}
	}
	// An empty URL means no registry: SOE.
	c, err := NewCodec(context.Background(), WithRegistry(""))
	if err != nil || c.Framing() != FramingSOE {
		t.Fatalf("empty url: %v %v", c, err)
	}
}

func TestNewCodecRegistryDown(t *testing.T) {
	_, srv := newRegistryCodec(t)
	srv.FailWith(503)
	_, err := NewCodec(context.Background(), WithRegistry(srv.URL))
	if err == nil || !strings.Contains(err.Error(), "SCHEMA_REGISTRY_URL") {
		t.Fatalf("registry down at start: %v", err)
	}
}

func TestWithoutAutoRegister(t *testing.T) {
	_, srv := newRegistryCodec(t) // registers the schemas
	c, err := NewCodec(context.Background(), WithRegistry(srv.URL), WithoutAutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.SchemaID(RecordRequest); !ok {
		t.Fatal("no id looked up")
	}
	topics := DefaultTopics()
	topics.Requests = "other.requests"
	if _, err := NewCodec(context.Background(), WithRegistry(srv.URL), WithoutAutoRegister(), WithTopics(topics)); err == nil {
		t.Fatal("NewCodec succeeded for a subject nobody registered")
	}
}
