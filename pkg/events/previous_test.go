package events

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/schemas"
)

// previousFingerprints pins the versions in schemas/previous: the schemas
// every record was written with before the rails (#19) were added.
var previousFingerprints = map[RecordType]uint64{
	RecordRequest:           0x898bdd604de92c37,
	RecordBatch:             0xdc655d6c61aed4a0,
	RecordStatusChange:      0xfe0d2b41bc256e4e,
	RecordBatchStatusChange: 0x010c82677435488a,
}

func previousSchema(t testing.TB, r RecordType) string {
	t.Helper()
	b, err := schemas.FS.ReadFile(fmt.Sprintf("previous/%s.%016x.avsc", r, previousFingerprints[r]))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPreviousSchemasPinned: schemas/previous holds exactly the pinned
// versions, each file's content has the fingerprint its name says, and none
// is the current schema.
func TestPreviousSchemasPinned(t *testing.T) {
	files, err := fs.Glob(schemas.FS, "previous/*")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range Records {
		want = append(want, fmt.Sprintf("previous/%s.%016x.avsc", r, previousFingerprints[r]))
	}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Fatalf("schemas/previous holds %v, pinned %v", files, want)
	}
	for _, r := range Records {
		s, fp, err := parseSchema(previousSchema(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if fp != previousFingerprints[r] || s.(avro.NamedSchema).FullName() != r.FullName() {
			t.Errorf("%s: previous file has fingerprint %016x, name %s", r, fp, s.(avro.NamedSchema).FullName())
		}
		if fp == Fingerprint(r) {
			t.Errorf("%s: the previous version is the current one", r)
		}
	}
}

// previousCase is a value written by a producer still on the previous
// schemas, and what the current types must read from it: the same record,
// with everything the rails added empty.
type previousCase struct {
	name   string
	rec    RecordType
	value  any
	decode func(c *Codec, b []byte) (any, error)
	want   any
}

func previousCases() []previousCase {
	oldReq := func(r *payout.Request) *payout.Request {
		r.Beneficiary, r.Rail = withoutRailFields(r.Beneficiary), nil
		return r
	}
	oldBatch := func(b *payout.Batch) *payout.Batch {
		for i := range b.Transactions {
			b.Transactions[i].Beneficiary = withoutRailFields(b.Transactions[i].Beneficiary)
		}
		b.Rail = nil
		return b
	}
	oldStatus := func(s *payout.StatusChange) *payout.StatusChange { s.Rail = nil; return s }
	oldBatchStatus := func(s *payout.BatchStatusChange) *payout.BatchStatusChange { s.Rail = nil; return s }
	var out []previousCase
	for _, c := range allCases() {
		pc := previousCase{name: c.name, decode: c.decode}
		switch v := c.want.(type) {
		case *payout.Request:
			if !slices.Contains([]payout.LegalIDType{payout.LegalCPF, payout.LegalCNPJ}, v.Beneficiary.LegalIDType) {
				pc.rec, pc.value, pc.want = RecordRequest, v, oldReq(clone(v))
			}
		case *payout.Batch:
			pc.rec, pc.value, pc.want = RecordBatch, v, oldBatch(clone(v))
		case *payout.StatusChange:
			if v.Status != payout.StatusReturned && (v.PreviousStatus == nil || *v.PreviousStatus != payout.StatusReturned) {
				pc.rec, pc.value, pc.want = RecordStatusChange, v, oldStatus(clone(v))
			}
		case *payout.BatchStatusChange:
			pc.rec, pc.value, pc.want = RecordBatchStatusChange, v, oldBatchStatus(clone(v))
		}
		if pc.value != nil { // else the value cannot exist in the previous schema
			out = append(out, pc)
		}
	}
	return out
}

// clone copies a fixture deeply enough for previousCases to clear fields of
// the copy: the struct, and a batch's transactions.
func clone[T any](v *T) *T {
	c := *v
	switch x := any(&c).(type) {
	case *payout.Batch:
		x.Transactions = slices.Clone(x.Transactions)
	}
	return &c
}

// TestPreviousSchemasSOE: a record written in single-object encoding with a
// previous schema (its old fingerprint in the header) decodes into the
// current types, with no option: every codec knows schemas/previous.
func TestPreviousSchemasSOE(t *testing.T) {
	c := newSOECodec(t)
	cases := previousCases()
	if len(cases) < 8 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, pc := range cases {
		t.Run(pc.name, func(t *testing.T) {
			b := soeFrame(t, previousSchema(t, pc.rec), pc.value)
			if fp := binary.LittleEndian.Uint64(b[2:10]); fp != previousFingerprints[pc.rec] {
				t.Fatalf("framed with %016x", fp)
			}
			got, err := pc.decode(c, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, pc.want) {
				t.Fatalf("old data read as\n %+v\nwant %+v", got, pc.want)
			}
		})
	}
}

// TestPreviousSchemasConfluent: a registry that a deployment on the
// previous schemas filled (the old versions under the topic subjects), then
// a codec on the current ones starts against it. The new versions register
// as BACKWARD-compatible successors under the same subjects, and data framed
// with the old ids decodes into the current types.
func TestPreviousSchemasConfluent(t *testing.T) {
	srv := registrytest.NewServer()
	t.Cleanup(srv.Close)
	oldIDs := map[RecordType]int{}
	for _, r := range Records {
		for _, subject := range subjects(r, DefaultTopics()) {
			id, err := srv.Register(subject, previousSchema(t, r))
			if err != nil {
				t.Fatal(err)
			}
			oldIDs[r] = id
		}
	}
	c, err := NewCodec(context.Background(), WithRegistry(srv.URL))
	if err != nil {
		t.Fatalf("current schemas do not follow the previous ones in the registry: %v", err)
	}
	for _, r := range Records {
		if id, _ := c.SchemaID(r); id == oldIDs[r] {
			t.Fatalf("%s: current schema has the old id %d", r, id)
		}
	}
	for _, pc := range previousCases() {
		t.Run(pc.name, func(t *testing.T) {
			b := confluentFrame(t, previousSchema(t, pc.rec), oldIDs[pc.rec], pc.value)
			got, err := pc.decode(c, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, pc.want) {
				t.Fatalf("old data read as\n %+v\nwant %+v", got, pc.want)
			}
		})
	}
}

// TestPreviousReadersCannotReadCurrent pins why readers must be upgraded
// before writers: a reader on the previous PayoutRequested, PayoutBatch or
// PayoutStatusChanged cannot resolve the current writer schema (new enum
// symbols, and our enums have no default on purpose). BatchStatusChanged
// only gained an optional field, which an old reader skips.
func TestPreviousReadersCannotReadCurrent(t *testing.T) {
	for _, r := range Records {
		reader := avro.MustParse(previousSchema(t, r))
		writer := avro.MustParse(Schema(r))
		_, err := avro.NewSchemaCompatibility().Resolve(reader, writer)
		if wantErr := r != RecordBatchStatusChange; (err != nil) != wantErr {
			t.Errorf("%s: previous reader resolving the current writer: %v", r, err)
		}
	}
}
