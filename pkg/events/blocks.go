package events

import (
	"errors"

	"github.com/hamba/avro/v2"
)

// hamba's array decoder adds each block's count to a running length before
// it checks it against MaxSliceAllocSize: a count of -2^63, or counts whose
// sum overflows, make the length negative, which passes the check, and the
// elements of a following block are then written at negative offsets of
// the slice, outside it: memory corruption, not an error (a review found
// it with a batch of the previous PayoutBatch schema). Batches of the
// current schema never reach hamba (decodeBatchFast). A batch of any other
// writer schema is first walked by checkBlocks, which reads the body as
// that schema says and refuses an array block count that is negative or
// takes an array past MaxTransactions; only a body it accepts is handed to
// hamba, which then reads the same counts.

// maxSchemaDepth bounds checkBlocks' recursion (a recursive schema).
const maxSchemaDepth = 64

var errBlockCount = errors.New("array block count out of range")

// checkBlocks walks body as writer (the writer schema) describes it.
func checkBlocks(writer avro.Schema, body []byte) error {
	r := fastReader{b: body}
	skipValue(&r, writer, 0)
	return r.err
}

func skipValue(r *fastReader, s avro.Schema, depth int) {
	if r.err != nil {
		return
	}
	if depth > maxSchemaDepth {
		r.fail(errFastMalformed)
		return
	}
	switch s := s.(type) {
	case *avro.RefSchema:
		skipValue(r, s.Schema(), depth+1)
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			skipValue(r, f.Type(), depth+1)
		}
	case *avro.EnumSchema:
		r.enumIndex(len(s.Symbols()))
	case *avro.UnionSchema:
		types := s.Types()
		i := r.enumIndex(len(types))
		if r.err == nil {
			skipValue(r, types[i], depth+1)
		}
	case *avro.FixedSchema:
		r.skip(s.Size())
	case *avro.ArraySchema:
		total := int64(0)
		for r.err == nil {
			n, size := r.blockHeader()
			if n == 0 {
				return
			}
			if n < 0 || n > MaxTransactions-total {
				r.fail(errBlockCount)
				return
			}
			total += n
			start := r.pos
			for ; n > 0 && r.err == nil; n-- {
				skipValue(r, s.Items(), depth+1)
			}
			r.endBlock(start, size)
		}
	case *avro.MapSchema:
		for r.err == nil {
			n, size := r.blockHeader()
			if n == 0 {
				return
			}
			if n < 0 {
				r.fail(errBlockCount)
				return
			}
			start := r.pos
			for ; n > 0 && r.err == nil; n-- {
				r.skipString()
				skipValue(r, s.Values(), depth+1)
			}
			r.endBlock(start, size)
		}
	case *avro.NullSchema:
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Null:
		case avro.Boolean:
			r.skip(1)
		case avro.Int:
			r.int32()
		case avro.Long:
			r.long()
		case avro.Float:
			r.skip(4)
		case avro.Double:
			r.skip(8)
		case avro.String, avro.Bytes:
			r.skipString()
		default:
			r.fail(errFastMalformed)
		}
	default:
		r.fail(errFastMalformed)
	}
}

// skip passes n bytes.
func (r *fastReader) skip(n int) {
	if r.err != nil {
		return
	}
	if len(r.b)-r.pos < n {
		r.fail(errFastTruncated)
		return
	}
	r.pos += n
}

// skipString passes a string or bytes value, with string's limits.
func (r *fastReader) skipString() {
	n := r.long()
	if r.err != nil {
		return
	}
	if n < 0 || n > MaxStringBytes {
		r.fail(errFastMalformed)
		return
	}
	r.skip(int(n))
}
