package events

import (
	"errors"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The ingest hot path decodes one PayoutRequested per record. When the
// writer schema is the current one (the common case) it is read by this
// hand-written decoder instead of hamba's reflection-driven one: same
// result (a differential fuzz test holds it to hamba's), about a third of
// the time, and all the record's strings share one allocation. Any other
// writer schema goes through hamba with schema resolution.
//
// The layout it reads is schemas/PayoutRequested.avsc, field by field;
// TestFastRequestMatchesSchema fails if the schema changes under it.

var (
	errFastTruncated = errors.New("body ends inside the record")
	errFastMalformed = errors.New("malformed value")
)

var paymentTypeSyms = [...]payout.PaymentType{payout.PaymentPayroll, payout.PaymentProviders, payout.PaymentOther}
var legalIDTypeSyms = [...]payout.LegalIDType{payout.LegalCC, payout.LegalNIT, payout.LegalCE, payout.LegalPP, payout.LegalTI, payout.LegalDNI, payout.LegalCPF, payout.LegalCNPJ}
var accountTypeSyms = [...]payout.AccountType{payout.AccountAhorros, payout.AccountCorriente, payout.AccountDepositoElectronico}
var intervalSyms = [...]payout.Interval{payout.IntervalBiweek, payout.IntervalMonth}

// fastReader reads Avro binary from body. Strings are substrings of str,
// one string conversion (a copy) of the whole body, so they never alias the
// caller's buffer, which it may reuse at once.
type fastReader struct {
	b   []byte
	str string
	pos int
	err error
	// slab, when not nil, holds what optString's pointers point to, a
	// chunk at a time (a batch's many optional fields), instead of one
	// allocation each.
	slab []string
}

func (r *fastReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.b)
}

// varint reads an unsigned varint of at most max bytes, as hamba does:
// the high bits of the last byte shift out, so the same bytes decode to the
// same value in both decoders.
func (r *fastReader) varint(max int) uint64 {
	var v uint64
	var shift uint
	for i := 0; ; i++ {
		if i == max {
			r.fail(errFastMalformed) // longer than the type's varint
			return 0
		}
		if r.pos >= len(r.b) {
			r.fail(errFastTruncated)
			return 0
		}
		c := r.b[r.pos]
		r.pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
		shift += 7
	}
}

// long reads an Avro long as hamba's ReadLong does: ten bytes at most.
func (r *fastReader) long() int64 {
	v := r.varint(10)
	return int64(v>>1) ^ -int64(v&1)
}

// int32 reads an Avro int as hamba's ReadInt does: five bytes at most, the
// bits of the fifth past 32 dropped. Enum symbols and union branches are
// ints.
func (r *fastReader) int32() int32 {
	v := uint32(r.varint(5))
	return int32(v>>1) ^ -int32(v&1)
}

func (r *fastReader) string() string {
	n := r.long()
	if r.err != nil {
		return ""
	}
	if n < 0 || n > MaxStringBytes {
		r.fail(errFastMalformed)
		return ""
	}
	if int64(len(r.b)-r.pos) < n {
		r.fail(errFastTruncated)
		return ""
	}
	s := r.str[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s
}

func (r *fastReader) enumIndex(n int) int {
	i := r.int32()
	if r.err == nil && (i < 0 || int(i) >= n) {
		r.fail(errFastMalformed)
		return 0
	}
	return int(i)
}

// blockCount reads the header of an array's or a map's block: its entry
// count, 0 at the end. The byte size a negative count brings is skipped.
// A count of -2^63 stays negative.
func (r *fastReader) blockCount() int64 {
	n, _ := r.blockHeader()
	return n
}

// blockHeader is blockCount with the block's byte size, -1 when the
// block gives none.
func (r *fastReader) blockHeader() (n, size int64) {
	n = r.long()
	if n < 0 {
		return -n, r.long()
	}
	return n, -1
}

// endBlock checks that a block read from start took the byte size its
// header gave, when it gave one: hamba skips such a block by its size
// where the reader schema lacks the field, so a size that disagrees with
// the items would make hamba read from another place than checkBlocks
// walked.
func (r *fastReader) endBlock(start int, size int64) {
	if r.err == nil && size >= 0 && int64(r.pos-start) != size {
		r.fail(errFastMalformed)
	}
}

// union reads the branch index of a ["null", T] union: false for null.
func (r *fastReader) union() bool {
	return r.enumIndex(2) == 1
}

func (r *fastReader) millis() time.Time {
	return time.UnixMilli(r.long()).UTC()
}

// optString reads a ["null", "string"] union: nil for null.
func (r *fastReader) optString() *string {
	if !r.union() {
		return nil
	}
	if r.slab == nil {
		s := r.string()
		return &s
	}
	if len(r.slab) == cap(r.slab) {
		r.slab = make([]string, 0, cap(r.slab))
	}
	r.slab = append(r.slab, r.string())
	return &r.slab[len(r.slab)-1]
}

// decodeRequestFast decodes body, written with the current PayoutRequested
// schema, into r (already reset by the caller). With skipMeta the metadata
// map is read and checked but not built.
func decodeRequestFast(body []byte, r *payout.Request, skipMeta bool) error {
	if len(body) == 0 {
		return errFastTruncated
	}
	rd := fastReader{b: body, str: string(body)}
	r.RequestID = rd.string()
	r.OriginAccountID = rd.string()
	r.PaymentType = paymentTypeSyms[rd.enumIndex(len(paymentTypeSyms))]
	rd.readBeneficiary(&r.Beneficiary)
	r.AmountInCents = rd.long()
	r.Currency = rd.string()
	r.DispersionDatetime = rd.optMillis()
	r.Recurring = rd.optRecurring()
	r.RequestedAt = rd.millis()
	// metadata: blocks of (count, [size,] entries), ended by a 0 count.
	for rd.err == nil {
		n := rd.blockCount()
		if n == 0 {
			break
		}
		if n > int64(len(body)) { // each entry takes at least two bytes
			rd.fail(errFastMalformed)
			break
		}
		if r.Metadata == nil && !skipMeta {
			r.Metadata = make(map[string]string, n)
		}
		for ; n > 0 && rd.err == nil; n-- {
			k := rd.string()
			v := rd.string()
			if !skipMeta {
				r.Metadata[k] = v
			}
		}
	}
	r.Rail = rd.optString()
	if rd.err != nil {
		return rd.err
	}
	if rd.pos != len(body) {
		return errTrailing
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
	return nil
}

var errTrailing = errors.New("trailing bytes after the record")
