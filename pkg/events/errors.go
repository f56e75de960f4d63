package events

import "errors"

// Decode errors. Every error returned by a Decode method wraps exactly one of
// these, so a consumer can route the record with errors.Is. None of them (nor
// any text wrapped with them) contains payload bytes.
var (
	// ErrUnknownFraming: the value starts with neither the SOE magic
	// (0xC3 0x01) nor the Confluent magic byte (0x00). Permanent: DLQ.
	ErrUnknownFraming = errors.New("events: unknown framing")

	// ErrTruncated: the value is empty, shorter than its header, or its Avro
	// body ends before the record does. Permanent: DLQ.
	ErrTruncated = errors.New("events: truncated value")

	// ErrUnknownSchema: the SOE fingerprint is neither the current schema's
	// nor one given to RegisterWriterSchema, or the registry has answered
	// 404 (or another 4xx but 401, 403, 407, 408 and 429) for the Confluent
	// schema id for the not-found retry (WithNotFoundRetry), or no registry
	// is configured. Permanent: DLQ.
	ErrUnknownSchema = errors.New("events: unknown writer schema")

	// ErrIncompatibleSchema: the writer schema is known but cannot be read as
	// the expected record (another record type on the topic, or a breaking
	// change such as a new enum symbol), or the registry serves, for the
	// Confluent schema id, a schema this codec can never read: a PROTOBUF or
	// JSON schema (ids are global across schema types in a shared
	// registry), an Avro schema with references, or text that does not
	// parse. Permanent: DLQ; the answer is cached, so the id is fetched
	// once. Also returned by RegisterWriterSchema.
	ErrIncompatibleSchema = errors.New("events: incompatible writer schema")

	// ErrMalformed: the body does not decode under its writer schema: a bad
	// union index or enum symbol, a negative length, trailing bytes. It wraps
	// hamba/avro's error. Permanent: DLQ.
	ErrMalformed = errors.New("events: malformed value")

	// ErrRegistryUnavailable: a Confluent schema id had to be fetched and
	// the registry could not answer: a network error, a timeout, an answer
	// cut short or not the registry's JSON, 5xx, 408 or 429. Transient:
	// retry the record later; do not dead-letter it.
	ErrRegistryUnavailable = errors.New("events: schema registry unavailable")

	// ErrSchemaNotYetFound: the registry answered 404 (or another 4xx but
	// 408 and 429) for a Confluent schema id, and the not-found retry
	// (WithNotFoundRetry) has not run out since the first such answer: a
	// lagging follower may learn it. Transient: retry the record later
	// (with backoff); once the retry runs out the same record gets
	// ErrUnknownSchema.
	ErrSchemaNotYetFound = errors.New("events: schema id not (yet) in the registry")
)

// ErrDecodeOnly is returned by the Append methods of a Codec built
// WithDecodeOnly, which registers no schema and so has no id to frame a
// value with.
var ErrDecodeOnly = errors.New("events: the codec only decodes (WithDecodeOnly)")

// Permanent reports whether a decode error means the bytes are bad (send the
// record to the DLQ) rather than a transient failure (retry).
func Permanent(err error) bool {
	return err != nil && !errors.Is(err, ErrRegistryUnavailable) && !errors.Is(err, ErrSchemaNotYetFound)
}
