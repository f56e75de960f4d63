// Package schemas holds the Avro schemas of the pipeline's Kafka records, the
// external contract. Each .avsc file is self-contained: it defines every named
// type it uses, so it parses alone. pkg/events embeds them through FS.
package schemas

import "embed"

// FS holds the *.avsc files of this directory.
//
//go:embed *.avsc
var FS embed.FS
