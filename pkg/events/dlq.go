package events

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of a DLQ record.
const (
	HeaderError           = "error"            // why the record was dead-lettered
	HeaderSourceTopic     = "source-topic"     // the topic it was consumed from
	HeaderSourcePartition = "source-partition" // its partition, decimal
	HeaderSourceOffset    = "source-offset"    // its offset, decimal
)

// MaxDLQErrorLen bounds the error header, in bytes.
const MaxDLQErrorLen = 1024

// DLQRecord returns the dead-letter record for src: the same key and value
// bytes, src's headers except any named like ours, then the four DLQ headers.
// err must come from this package or be equally free of payload: the errors
// of the Decode methods never quote payload bytes. The error text is cut to
// MaxDLQErrorLen bytes and made printable UTF-8.
func DLQRecord(src *kgo.Record, dlqTopic string, err error) *kgo.Record {
	msg := "unknown error"
	if err != nil {
		msg = sanitizeHeader(err.Error())
	}
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+4)
	for _, h := range src.Headers {
		switch h.Key {
		case HeaderError, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset:
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	)
	return &kgo.Record{Topic: dlqTopic, Key: src.Key, Value: src.Value, Headers: hs}
}

func sanitizeHeader(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > MaxDLQErrorLen {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
