// Package schemas holds the Avro schemas of the pipeline's Kafka records, the
// external contract. Each .avsc file is self-contained: it defines every named
// type it uses, so it parses alone. pkg/events embeds them through FS.
//
// previous/ keeps every earlier version that was ever written to Kafka, as
// <Record>.<fingerprint>.avsc (the hamba CRC-64-AVRO fingerprint in hex):
// pkg/events reads data written with them into the current types. A version
// leaves this directory only when no topic can hold its data any more.
package schemas

import "embed"

// FS holds the *.avsc files of this directory and of previous/.
//
//go:embed *.avsc previous/*.avsc
var FS embed.FS
