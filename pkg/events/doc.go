// Package events is the wire contract of the pipeline: the Avro codecs for
// the records in schemas/*.avsc, their framing on Kafka, the topic names, the
// DLQ record layout and the franz-go client options every worker shares.
//
// # API
//
//	c, err := events.NewCodec(ctx, events.WithRegistry(url), events.WithTopics(t))
//	b, err  = c.AppendRequest(b[:0], &req)    // also AppendBatch, AppendStatusChange, AppendBatchStatusChange
//	err     = c.DecodeRequest(value, &req)    // also DecodeBatch, DecodeStatusChange, DecodeBatchStatusChange
//	err     = c.RegisterWriterSchema(json)    // accept SOE data written with an older or newer schema
//	fp     := events.Fingerprint(events.RecordRequest)
//	t, err := events.TopicsFromEnv(os.Getenv)  // events.DefaultTopics(), t.Bindings(), t.Validate()
//	rec    := events.DLQRecord(src, t.RequestsDLQ, err)
//	opts, err := kafkaConfig.Opts(promRegistry, "ingest")
//
// # Framing
//
// A value is framed in one of two ways, and Decode* detects which from its
// first bytes:
//
//   - Avro single-object encoding (SOE): 0xC3 0x01, then the 8-byte
//     little-endian CRC-64-AVRO fingerprint of the writer schema, then the
//     Avro binary body. Used when no schema registry is configured.
//   - Confluent wire format: 0x00, then the 4-byte big-endian schema id, then
//     the body. Used for encoding when a registry is configured
//     (SCHEMA_REGISTRY_URL). Subjects follow Confluent's default
//     TopicNameStrategy, "<topic>-value" (PayoutBatch is registered under both
//     the batches and the deferred-batches subjects). NewCodec registers the
//     current schemas at start, so a bad registry stops the worker early.
//     Unknown ids met while decoding are fetched from the registry once and
//     cached, and so is a schema this codec can never read (not Avro, Avro
//     with references): ErrIncompatibleSchema. An id the registry answers
//     404 (or another 4xx but 408 and 429) for is not cached: it may be a
//     follower lagging behind its leader, so it is retried (see
//     WithNotFoundRetry) before it is taken as unknown. A tool that only
//     reads builds its codec WithDecodeOnly: it registers nothing.
//
// Fingerprints are computed by hamba/avro, whose canonical form keeps
// logicalType (the Avro spec drops it). A writer in another language that
// emits SOE must check its fingerprints against Fingerprint / the pinned
// values in the tests, or use the Confluent framing.
//
// # Decoding
//
// Decode* overwrites the whole destination struct. It never writes through a
// pointer, slice or map the struct held before the call, so a value copied out
// of an earlier decode stays intact; nothing in the result aliases the input
// bytes. An empty metadata map decodes as nil. Timestamps travel as
// timestamp-millis: sub-millisecond precision is dropped and decoded times
// are in UTC.
//
// Errors are classified by sentinels, for errors.Is: ErrUnknownFraming,
// ErrTruncated, ErrUnknownSchema, ErrIncompatibleSchema and ErrMalformed mean
// the bytes themselves are bad (send them to the DLQ); ErrRegistryUnavailable
// (the registry could not be asked) and ErrSchemaNotYetFound (a 404 within
// the not-found retry) mean the record must be retried, not dead-lettered.
// Permanent tells the two groups apart. No error text contains payload bytes.
//
// # Record keys
//
// payouts.requests.v1 and payouts.status.v1 are keyed by requestId;
// payouts.batches.v1, payouts.batches.deferred.v1 and payouts.batch-status.v1
// by batchId (see RequestKey, BatchKey, StatusChangeKey, BatchStatusChangeKey).
// The DLQ keeps the original key.
package events
