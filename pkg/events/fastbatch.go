package events

import (
	"fmt"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// PayoutBatch is written once per batch by ingest (and by the dispatcher
// when it defers or halves one) and read once per batch by the dispatcher:
// a record of up to MaxTransactions payees, so its per-transaction cost is
// paid on every request. PayoutRequested is written once per request by
// every producer that uses this package. appendBatchFast,
// appendRequestFast and decodeBatchFast write and read
// schemas/PayoutBatch.avsc and schemas/PayoutRequested.avsc field by field,
// without reflection: the same bytes as hamba with this package's config
// (arrays and maps in blocks of blockLength entries, each block led by its
// negated count and byte size), held to it by
// TestFastBatchMatchesHamba, TestFastRequestEncodeMatchesHamba and
// FuzzFastBatch.

// blockLength is the codec's avro.Config BlockLength: how many entries of
// an array or a map one block holds.
const blockLength = 1000

// symIndex is v's index in syms, an enum's symbols in schema order (the
// decoders' tables): false for a value outside them.
func symIndex[T comparable](syms []T, v T) (int64, bool) {
	for i, s := range syms {
		if s == v {
			return int64(i), true
		}
	}
	return 0, false
}

// errEnum is the error of a value outside its enum's symbols (what hamba
// refuses to encode too).
func errEnum(record, field, value string) error {
	return fmt.Errorf("events: encode %s: unknown %s %q", record, field, truncateForError(value))
}

// appendMillis writes a timestamp-millis as hamba does.
func appendMillis(b []byte, t time.Time) []byte {
	return appendLong(b, t.Unix()*1e3+int64(t.Nanosecond()/1e6))
}

func appendOptMillis(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, 0)
	}
	return appendMillis(append(b, 2), *t)
}

func appendBeneficiary(b []byte, ben *payout.Beneficiary, record string) ([]byte, error) {
	lt, ok := symIndex(legalIDTypeSyms[:], ben.LegalIDType)
	if !ok {
		return b, errEnum(record, "legalIdType", string(ben.LegalIDType))
	}
	at, ok := symIndex(accountTypeSyms[:], ben.AccountType)
	if !ok {
		return b, errEnum(record, "accountType", string(ben.AccountType))
	}
	b = appendLong(b, lt)
	b = appendString(b, ben.LegalID)
	b = appendString(b, ben.Name)
	b = appendString(b, ben.Email)
	b = appendString(b, ben.BankCode)
	b = appendOptString(b, ben.BankID)
	b = appendLong(b, at)
	b = appendString(b, ben.AccountNumber)
	b = appendOptString(b, ben.Phone)
	b = appendOptString(b, ben.PixKey)
	b = appendOptString(b, ben.Branch)
	b = appendOptString(b, ben.BranchDigit)
	b = appendOptString(b, ben.AccountDigit)
	return b, nil
}

func appendOptRecurring(b []byte, r *payout.Recurring, record string) ([]byte, error) {
	if r == nil {
		return append(b, 0), nil
	}
	iv, ok := symIndex(intervalSyms[:], r.Interval)
	if !ok {
		return b, errEnum(record, "recurring interval", string(r.Interval))
	}
	b = append(b, 2)
	b = appendLong(b, iv)
	b = appendLong(b, int64(r.Months))
	return appendOptString(b, r.Description), nil
}

// closeBlock turns the count entries written since start into one block:
// it inserts the block's header (the negated count, then the byte size)
// before them, as hamba's WriteBlockCB does.
func closeBlock(b []byte, start int, count int64) []byte {
	size := len(b) - start
	var hb [20]byte
	h := appendLong(appendLong(hb[:0], -count), int64(size))
	b = append(b, h...)
	copy(b[start+len(h):], b[start:start+size])
	copy(b[start:], h)
	return b
}

// appendBatchFast appends b's Avro body (no framing) to dst. On error the
// returned slice is to be dropped.
func appendBatchFast(dst []byte, b *payout.Batch) ([]byte, error) {
	const record = "PayoutBatch"
	pt, ok := symIndex(paymentTypeSyms[:], b.PaymentType)
	if !ok {
		return dst, errEnum(record, "paymentType", string(b.PaymentType))
	}
	dst = appendString(dst, b.BatchID)
	dst = appendString(dst, b.OriginAccountID)
	dst = appendLong(dst, pt)
	dst = appendOptMillis(dst, b.Schedule.DispersionDatetime)
	dst, err := appendOptRecurring(dst, b.Schedule.Recurring, record)
	if err != nil {
		return dst, err
	}
	txs := b.Transactions
	for i := 0; i < len(txs); i += blockLength {
		end := min(i+blockLength, len(txs))
		start := len(dst)
		for j := i; j < end; j++ {
			tx := &txs[j]
			dst = appendString(dst, tx.RequestID)
			if dst, err = appendBeneficiary(dst, &tx.Beneficiary, record); err != nil {
				return dst, err
			}
			dst = appendLong(dst, tx.AmountInCents)
			dst = appendMillis(dst, tx.RequestedAt)
		}
		dst = closeBlock(dst, start, int64(end-i))
	}
	dst = append(dst, 0)
	dst = appendLong(dst, b.TotalAmountInCents)
	dst = appendLong(dst, int64(b.TransactionCount))
	dst = appendMillis(dst, b.CreatedAt)
	dst = appendLong(dst, int64(b.Attempt))
	dst = appendOptMillis(dst, b.NotBefore)
	return appendOptString(dst, b.Rail), nil
}

// appendRequestFast appends r's Avro body (no framing) to dst. The
// metadata map is written in Go's map order, as hamba writes it. On error
// the returned slice is to be dropped.
func appendRequestFast(dst []byte, r *payout.Request) ([]byte, error) {
	const record = "PayoutRequested"
	pt, ok := symIndex(paymentTypeSyms[:], r.PaymentType)
	if !ok {
		return dst, errEnum(record, "paymentType", string(r.PaymentType))
	}
	dst = appendString(dst, r.RequestID)
	dst = appendString(dst, r.OriginAccountID)
	dst = appendLong(dst, pt)
	dst, err := appendBeneficiary(dst, &r.Beneficiary, record)
	if err != nil {
		return dst, err
	}
	dst = appendLong(dst, r.AmountInCents)
	dst = appendString(dst, r.Currency)
	dst = appendOptMillis(dst, r.DispersionDatetime)
	if dst, err = appendOptRecurring(dst, r.Recurring, record); err != nil {
		return dst, err
	}
	dst = appendMillis(dst, r.RequestedAt)
	if len(r.Metadata) > 0 {
		start, n := len(dst), int64(0)
		for k, v := range r.Metadata {
			if n == blockLength {
				dst = closeBlock(dst, start, n)
				start, n = len(dst), 0
			}
			dst = appendString(dst, k)
			dst = appendString(dst, v)
			n++
		}
		dst = closeBlock(dst, start, n)
	}
	dst = append(dst, 0)
	return appendOptString(dst, r.Rail), nil
}

// readBeneficiary reads a Beneficiary record into b.
func (rd *fastReader) readBeneficiary(b *payout.Beneficiary) {
	b.LegalIDType = legalIDTypeSyms[rd.enumIndex(len(legalIDTypeSyms))]
	b.LegalID = rd.string()
	b.Name = rd.string()
	b.Email = rd.string()
	b.BankCode = rd.string()
	b.BankID = rd.optString()
	b.AccountType = accountTypeSyms[rd.enumIndex(len(accountTypeSyms))]
	b.AccountNumber = rd.string()
	b.Phone = rd.optString()
	b.PixKey = rd.optString()
	b.Branch = rd.optString()
	b.BranchDigit = rd.optString()
	b.AccountDigit = rd.optString()
}

// optMillis reads a ["null", timestamp-millis] union: nil for null.
func (rd *fastReader) optMillis() *time.Time {
	if !rd.union() {
		return nil
	}
	t := rd.millis()
	return &t
}

// optRecurring reads a ["null", Recurring] union: nil for null.
func (rd *fastReader) optRecurring() *payout.Recurring {
	if !rd.union() {
		return nil
	}
	rc := &payout.Recurring{}
	rc.Interval = intervalSyms[rd.enumIndex(len(intervalSyms))]
	rc.Months = rd.int32()
	if rd.union() {
		s := rd.string()
		rc.Description = &s
	}
	return rc
}

// optSlab is how many optional strings one allocation of decodeBatchFast
// holds.
const optSlab = 128

// decodeBatchFast decodes body, written with the current PayoutBatch
// schema, into b (already reset by the caller). All of the batch's strings
// share one copy of body, and its optional strings a few allocations. Like hamba, an empty array decodes as an empty,
// non-nil slice, and more than MaxTransactions transactions are refused.
func decodeBatchFast(body []byte, b *payout.Batch) error {
	if len(body) == 0 {
		return errFastTruncated
	}
	rd := fastReader{b: body, str: string(body), slab: make([]string, 0, optSlab)}
	b.BatchID = rd.string()
	b.OriginAccountID = rd.string()
	b.PaymentType = paymentTypeSyms[rd.enumIndex(len(paymentTypeSyms))]
	b.Schedule.DispersionDatetime = rd.optMillis()
	b.Schedule.Recurring = rd.optRecurring()
	var txs []payout.Transaction
	for rd.err == nil {
		n, size := rd.blockHeader()
		if n == 0 {
			break
		}
		// A block count of -2^63 stays negative; each transaction takes
		// at least 19 bytes.
		if n < 0 || n > MaxTransactions-int64(len(txs)) {
			rd.fail(errFastMalformed)
			break
		}
		if n > int64(len(body)-rd.pos) {
			rd.fail(errFastTruncated)
			break
		}
		if txs == nil {
			txs = make([]payout.Transaction, 0, n)
		}
		start := rd.pos
		for ; n > 0 && rd.err == nil; n-- {
			txs = append(txs, payout.Transaction{})
			tx := &txs[len(txs)-1]
			tx.RequestID = rd.string()
			rd.readBeneficiary(&tx.Beneficiary)
			tx.AmountInCents = rd.long()
			tx.RequestedAt = rd.millis()
		}
		rd.endBlock(start, size) // as checkBlocks, the oracle of the other schemas
	}
	if txs == nil {
		txs = []payout.Transaction{}
	}
	b.Transactions = txs
	b.TotalAmountInCents = rd.long()
	b.TransactionCount = rd.int32()
	b.CreatedAt = rd.millis()
	b.Attempt = rd.int32()
	b.NotBefore = rd.optMillis()
	b.Rail = rd.optString()
	if rd.err != nil {
		return rd.err
	}
	if rd.pos != len(body) {
		return errTrailing
	}
	return nil
}
