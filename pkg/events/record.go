package events

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/schemas"
)

// RecordType names one of the pipeline's Avro records.
type RecordType uint8

// The records of schemas/*.avsc.
const (
	RecordRequest           RecordType = iota // PayoutRequested, payout.Request
	RecordBatch                               // PayoutBatch, payout.Batch
	RecordStatusChange                        // PayoutStatusChanged, payout.StatusChange
	RecordBatchStatusChange                   // BatchStatusChanged, payout.BatchStatusChange
	numRecords
)

// Namespace is the Avro namespace of every record.
const Namespace = "co.payouts.v1"

var recordNames = [numRecords]string{"PayoutRequested", "PayoutBatch", "PayoutStatusChanged", "BatchStatusChanged"}

// String returns the Avro record name, e.g. "PayoutRequested".
func (t RecordType) String() string {
	if t >= numRecords {
		return fmt.Sprintf("RecordType(%d)", uint8(t))
	}
	return recordNames[t]
}

// FullName returns the Avro full name, e.g. "co.payouts.v1.PayoutRequested".
func (t RecordType) FullName() string { return Namespace + "." + t.String() }

// Records lists every record type.
var Records = []RecordType{RecordRequest, RecordBatch, RecordStatusChange, RecordBatchStatusChange}

type parsedSchema struct {
	json   string
	schema avro.Schema
	fp     uint64
}

// embedded parses the embedded schemas once. They are compile-time data, so a
// failure is a bug caught by the tests; it is still returned, not panicked.
var embedded = sync.OnceValues(func() ([numRecords]parsedSchema, error) {
	var out [numRecords]parsedSchema
	for _, t := range Records {
		b, err := schemas.FS.ReadFile(t.String() + ".avsc")
		if err != nil {
			return out, fmt.Errorf("events: read schema %s: %w", t, err)
		}
		s, fp, err := parseSchema(string(b))
		if err != nil {
			return out, fmt.Errorf("events: schema %s: %w", t, err)
		}
		if got := s.(avro.NamedSchema).FullName(); got != t.FullName() {
			return out, fmt.Errorf("events: schema file %s.avsc defines %s", t, got)
		}
		out[t] = parsedSchema{json: string(b), schema: s, fp: fp}
	}
	return out, nil
})

// previousPrefix is the directory of schemas.FS that holds the earlier
// versions of the records.
const previousPrefix = "previous"

// previous returns the JSON of every earlier version of the records (see
// schemas/previous), which each Codec accepts as writer schemas, so that data
// written before a schema change still decodes in the SOE framing. (In the
// Confluent framing the registry serves old schemas by id.) The file name
// must carry the fingerprint of its content: a file edited after the fact
// fails here.
var previous = sync.OnceValues(func() ([]string, error) {
	entries, err := schemas.FS.ReadDir(previousPrefix)
	if err != nil {
		return nil, fmt.Errorf("events: read previous schemas: %w", err)
	}
	var out []string
	for _, e := range entries {
		b, err := schemas.FS.ReadFile(previousPrefix + "/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("events: read schema %s: %w", e.Name(), err)
		}
		s, fp, err := parseSchema(string(b))
		if err != nil {
			return nil, fmt.Errorf("events: schema %s: %w", e.Name(), err)
		}
		if want := fmt.Sprintf("%s.%016x.avsc", s.(avro.NamedSchema).Name(), fp); e.Name() != want {
			return nil, fmt.Errorf("events: previous schema file %s has the content of %s", e.Name(), want)
		}
		out = append(out, string(b))
	}
	return out, nil
})

// parseSchema parses a self-contained schema with a private name cache (so no
// global state is read or written) and computes its SOE fingerprint.
func parseSchema(js string) (avro.Schema, uint64, error) {
	s, err := avro.ParseWithCache(js, "", &avro.SchemaCache{})
	if err != nil {
		return nil, 0, err
	}
	if _, ok := s.(avro.NamedSchema); !ok || s.Type() != avro.Record {
		return nil, 0, fmt.Errorf("not a record schema")
	}
	fp, err := s.FingerprintUsing(avro.CRC64AvroLE)
	if err != nil {
		return nil, 0, err
	}
	return s, binary.LittleEndian.Uint64(fp), nil
}

// Schema returns the current schema JSON of t, exactly as in schemas/.
func Schema(t RecordType) string {
	p, err := embedded()
	if err != nil || t >= numRecords {
		return ""
	}
	return p[t].json
}

// Fingerprint returns the CRC-64-AVRO fingerprint of t's current schema, as
// written little-endian in the SOE header. It is hamba/avro's fingerprint,
// whose canonical form keeps logicalType: writers in other languages that
// emit SOE must check theirs against it. It returns 0 for an unknown t.
func Fingerprint(t RecordType) uint64 {
	p, err := embedded()
	if err != nil || t >= numRecords {
		return 0
	}
	return p[t].fp
}
