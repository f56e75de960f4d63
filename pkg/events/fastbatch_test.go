package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// hambaBatch is the reference the fast batch encoder must match: hamba's
// framed encoding of b.
func hambaBatch(t testing.TB, c *Codec, b *payout.Batch) []byte {
	t.Helper()
	v, err := c.encode(nil, &c.recs[RecordBatch], b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// slowBatchDecode reads body (no framing) with hamba, once checkBlocks has
// accepted it: hamba alone may write outside the slice on some array
// counts (blocks.go), which would corrupt the fuzzer's process.
func slowBatchDecode(c *Codec, body []byte) (payout.Batch, error) {
	if err := checkBlocks(c.recs[RecordBatch].schema, body); err != nil {
		return payout.Batch{}, fastErr(RecordBatch, err)
	}
	return rawHambaBatch(c, body)
}

// rawHambaBatch reads body with hamba alone: only for bodies whose array
// counts cannot make it write outside the slice.
func rawHambaBatch(c *Codec, body []byte) (payout.Batch, error) {
	rc := &c.recs[RecordBatch]
	st := c.states.Get().(*decodeState)
	defer c.states.Put(st)
	var b payout.Batch
	err := c.decode(rc, st, append(append([]byte{}, rc.header...), body...), &b)
	return b, err
}

// sampleBatches covers every enum symbol and optional field, an empty
// array, and the block boundaries of the transactions array (1000 a
// block).
func sampleBatches() []*payout.Batch {
	var out []*payout.Batch
	for _, n := range []int{0, 1, 3, 999, 1000, 1001, 2500} {
		out = append(out, fullBatch(n))
	}
	min := minimalBatch()
	min.Transactions = nil
	out = append(out, min, minimalBatch())
	desc := "quincena ñ"
	for i, pt := range []payout.PaymentType{payout.PaymentPayroll, payout.PaymentProviders, payout.PaymentOther} {
		b := fullBatch(len(legalIDTypeSyms))
		b.PaymentType = pt
		b.Schedule.Recurring = &payout.Recurring{Interval: intervalSyms[i%2], Months: int32(i - 1), Description: &desc}
		if i == 2 {
			b.Schedule, b.NotBefore, b.Rail = payout.Schedule{}, nil, nil
		}
		b.Attempt, b.TransactionCount, b.TotalAmountInCents = int32(-i), -1<<31, -1<<63
		b.CreatedAt = time.UnixMilli(-1_234_567).UTC()
		for j := range b.Transactions {
			ben := &b.Transactions[j].Beneficiary
			ben.LegalIDType = legalIDTypeSyms[j]
			ben.AccountType = accountTypeSyms[(i+j)%len(accountTypeSyms)]
			b.Transactions[j].AmountInCents = int64(j) - 3
		}
		out = append(out, b)
	}
	return out
}

// TestFastBatchMatchesHamba: AppendBatch writes exactly hamba's bytes, and
// DecodeBatch (the fast path) reads them back to the batch hamba reads.
func TestFastBatchMatchesHamba(t *testing.T) {
	c := newSOECodec(t)
	for i, b := range sampleBatches() {
		fast, err := c.AppendBatch(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		if slow := hambaBatch(t, c, b); !bytes.Equal(fast, slow) {
			t.Fatalf("batch %d (%d transactions): fast and hamba differ (%d and %d bytes)", i, len(b.Transactions), len(fast), len(slow))
		}
		want := *b
		if want.Transactions == nil {
			want.Transactions = []payout.Transaction{} // as hamba reads an empty array
		}
		var got payout.Batch
		if err := c.DecodeBatch(fast, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("batch %d: fast decode %v", i, err)
		}
		slow, err := slowBatchDecode(c, fast[10:])
		if err != nil || !reflect.DeepEqual(slow, got) {
			t.Fatalf("batch %d: hamba decode %v, or it differs from the fast one", i, err)
		}
		if len(b.Transactions) > 3 {
			continue
		}
		// Every strict prefix is refused by both.
		for n := 0; n < len(fast)-10; n++ {
			var r payout.Batch
			if decodeBatchFast(fast[10:10+n], &r) == nil {
				t.Fatalf("batch %d: a %d-byte prefix was accepted", i, n)
			}
		}
	}
}

// TestFastRequestEncodeMatchesHamba: AppendRequest writes hamba's bytes for
// requests with at most one metadata entry (hamba writes a map in Go's
// random order), and what both write for a larger map, blocks of 1000
// entries included, decodes to the same request.
func TestFastRequestEncodeMatchesHamba(t *testing.T) {
	c := newSOECodec(t)
	rc := &c.recs[RecordRequest]
	reqs := sampleRequests()
	reqs = append(reqs, *typicalRequest(), *minimalRequest())
	big := *typicalRequest()
	big.Metadata = map[string]string{}
	for i := range 2500 {
		big.Metadata["k"+strconv.Itoa(i)] = "v" + strconv.Itoa(i*7)
	}
	reqs = append(reqs, big)
	for i, r := range reqs {
		fast, err := c.AppendRequest(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := c.encode(nil, rc, &r)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Metadata) <= 1 && !bytes.Equal(fast, slow) {
			t.Fatalf("request %d: fast %x\nhamba %x", i, fast, slow)
		}
		if len(fast) != len(slow) {
			t.Fatalf("request %d: fast %d bytes, hamba %d", i, len(fast), len(slow))
		}
		if f, s := metadataBlocks(t, c, &r, fast), metadataBlocks(t, c, &r, slow); !reflect.DeepEqual(f, s) {
			t.Fatalf("request %d: metadata blocks of %v entries, hamba writes %v", i, f, s)
		}
		want := r
		if len(want.Metadata) == 0 {
			want.Metadata = nil
		}
		for j, v := range [][]byte{fast, slow} {
			back, err := slowDecode(t, c, v[10:])
			if err != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("request %d, encoding %d: decodes to %+v (%v)", i, j, back, err)
			}
		}
	}
}

// metadataBlocks returns the entry counts of the metadata blocks of v, r's
// framed encoding.
func metadataBlocks(t *testing.T, c *Codec, r *payout.Request, v []byte) []int64 {
	t.Helper()
	head := *r
	head.Metadata, head.Rail = nil, nil
	w, err := c.AppendRequest(nil, &head)
	if err != nil {
		t.Fatal(err)
	}
	rd := fastReader{b: v, pos: len(w) - 2} // before the map's end and the null rail
	var counts []int64
	for rd.err == nil {
		n := rd.long()
		if n == 0 {
			return counts
		}
		if n < 0 {
			n = -n
			rd.pos += int(rd.long())
		}
		counts = append(counts, n)
	}
	t.Fatalf("metadata blocks: %v", rd.err)
	return nil
}

// TestFastEncodeRefusesUnknownSymbols: a value outside an enum is refused
// by the fast encoders, as by hamba, and dst is handed back unchanged.
func TestFastEncodeRefusesUnknownSymbols(t *testing.T) {
	c := newSOECodec(t)
	bad := []func(r *payout.Request){
		func(r *payout.Request) { r.PaymentType = "SALARY" },
		func(r *payout.Request) { r.Beneficiary.LegalIDType = "RUT" },
		func(r *payout.Request) { r.Beneficiary.AccountType = "" },
		func(r *payout.Request) { r.Recurring = &payout.Recurring{Interval: "WEEK"} },
	}
	prefix := []byte("kept")
	for i, mutate := range bad {
		r := *typicalRequest()
		mutate(&r)
		if _, err := c.encode(nil, &c.recs[RecordRequest], &r); err == nil {
			t.Fatalf("case %d: hamba encoded it", i)
		}
		if out, err := c.AppendRequest(prefix, &r); err == nil || !bytes.Equal(out, prefix) {
			t.Fatalf("request case %d: %q, %v", i, out, err)
		}
		b := fullBatch(3)
		b.Transactions[1].Beneficiary = r.Beneficiary
		b.PaymentType = r.PaymentType
		b.Schedule.Recurring = r.Recurring
		if _, err := c.encode(nil, &c.recs[RecordBatch], b); err == nil {
			t.Fatalf("case %d: hamba encoded the batch", i)
		}
		if out, err := c.AppendBatch(prefix, b); err == nil || !bytes.Equal(out, prefix) {
			t.Fatalf("batch case %d: %q, %v", i, out, err)
		}
	}
}

// TestFastBatchMatchesSchema pins the layout the fast batch codec writes
// and reads.
func TestFastBatchMatchesSchema(t *testing.T) {
	var s struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(Schema(RecordBatch)), &s); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range s.Fields {
		names = append(names, f.Name)
	}
	want := []string{"batchId", "originAccountId", "paymentType", "schedule", "transactions", "totalAmountInCents", "transactionCount", "createdAt", "attempt", "notBefore", "rail"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("PayoutBatch fields are %v; the fast codec handles %v: update it with the schema", names, want)
	}
	rs := avro.MustParse(Schema(RecordBatch)).(*avro.RecordSchema)
	for _, f := range rs.Fields() {
		if f.Name() != "paymentType" {
			continue
		}
		var ours []string
		for _, p := range paymentTypeSyms {
			ours = append(ours, string(p))
		}
		if syms := f.Type().(*avro.EnumSchema).Symbols(); !reflect.DeepEqual(syms, ours) {
			t.Fatalf("paymentType symbols %v; the fast codec maps %v", syms, ours)
		}
	}
	if got := Fingerprint(RecordBatch); got != 0xf27d8cc6ae01e2d7 {
		t.Fatalf("PayoutBatch changed (fingerprint %#x): check appendBatchFast and decodeBatchFast against it, then re-pin", got)
	}
}

// TestFastBatchDecodeRefuses: DecodeBatch refuses what hamba refuses (a
// truncated body, trailing bytes, more than MaxTransactions transactions,
// an unknown enum symbol) and leaves the batch zero.
func TestFastBatchDecodeRefuses(t *testing.T) {
	c := newSOECodec(t)
	v, err := c.AppendBatch(nil, fullBatch(2))
	if err != nil {
		t.Fatal(err)
	}
	body := v[10:]
	var head []byte
	head = appendString(head, "b")
	head = appendString(head, "a")
	head = append(head, 0, 0, 0) // PAYROLL, no schedule
	tooMany := appendLong(append([]byte{}, head...), MaxTransactions+1)
	// A block count of -2^63 (negated, still negative), its byte size,
	// the array's end and the other fields, all zero or null: hamba
	// accepts it, with a slice length of -2^63, which would panic the
	// dispatcher on its first make([]T, len(b.Transactions)).
	minCount := append(appendLong(append([]byte{}, head...), -1<<63), 0, 0, 0, 0, 0, 0, 0, 0)
	if b, err := rawHambaBatch(c, minCount); err != nil || !negativeLen(len(b.Transactions)) {
		t.Fatalf("hamba on a block count of -2^63: %d transactions, %v", len(b.Transactions), err)
	}
	unknownEnum := append([]byte{}, body...)
	unknownEnum[len("batch-acc-origin-1-0001")+len("acc-origin-1")+2] = 2 * 3 // paymentType index 3
	cases := map[string]struct {
		body []byte
		want error
	}{
		"truncated":        {body[:len(body)-1], ErrTruncated},
		"trailing":         {append(append([]byte{}, body...), 0), ErrMalformed},
		"too many":         {tooMany, ErrMalformed},
		"unknown enum":     {unknownEnum, ErrMalformed},
		"negative minimum": {minCount, ErrMalformed},
	}
	for name, tc := range cases {
		if _, serr := slowBatchDecode(c, tc.body); serr == nil && name != "negative minimum" {
			t.Fatalf("%s: hamba accepted it", name)
		}
		got := payout.Batch{BatchID: "stale"}
		err := c.DecodeBatch(append(append([]byte{}, v[:10]...), tc.body...), &got)
		if !errors.Is(err, tc.want) || !reflect.DeepEqual(got, payout.Batch{}) {
			t.Fatalf("%s: %v (%+v), want %v", name, err, got, tc.want)
		}
	}
}

// TestOlderBatchNegativeCount: a batch written with the previous PayoutBatch
// schema, which hamba reads, with a block count of -2^63 is refused
// (checkBlocks), not handed on with a negative number of transactions.
func TestOlderBatchNegativeCount(t *testing.T) {
	c := newSOECodec(t)
	var body []byte
	body = appendString(body, "b")
	body = appendString(body, "a")
	body = append(body, 0, 0, 0) // PAYROLL, no schedule
	body = appendLong(body, -1<<63)
	body = append(body, 0, 0, 0, 0, 0, 0, 0) // size, end, total, count, createdAt, attempt, notBefore: no rail before
	v := binary.LittleEndian.AppendUint64([]byte{soeMagic0, soeMagic1}, previousFingerprints[RecordBatch])
	got := payout.Batch{BatchID: "stale"}
	if err := c.DecodeBatch(append(v, body...), &got); !errors.Is(err, ErrMalformed) || !reflect.DeepEqual(got, payout.Batch{}) {
		t.Fatalf("%v (%d transactions)", err, len(got.Transactions))
	}
}

// negativeLen reports whether n, a slice's length, is negative, which only
// a corrupt slice header makes it (the compiler takes len(s) < 0 for false).
func negativeLen(n int) bool { return strconv.Itoa(n)[0] == '-' }

// FuzzFastBatch holds the fast batch decoder to hamba's on arbitrary
// bodies: both accept with the same result, or both refuse.
func FuzzFastBatch(f *testing.F) {
	c := newSOECodec(f)
	for _, b := range sampleBatches() {
		if len(b.Transactions) > 3 {
			continue
		}
		v, err := c.AppendBatch(nil, b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v[10:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast payout.Batch
		ferr := decodeBatchFast(body, &fast)
		slow, serr := slowBatchDecode(c, body)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("fast err %v, hamba err %v", ferr, serr)
		}
		if ferr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %+v\nhamba %+v", fast, slow)
		}
	})
}

// FuzzOlderBatch: any body framed with the previous PayoutBatch schema
// (read by hamba, behind checkBlocks) is decoded or refused, never read
// into a batch of an impossible size; a run that corrupted memory would
// crash the fuzzer.
func FuzzOlderBatch(f *testing.F) {
	c := newSOECodec(f)
	header := binary.LittleEndian.AppendUint64([]byte{soeMagic0, soeMagic1}, previousFingerprints[RecordBatch])
	for _, pc := range previousCases() {
		if pc.rec == RecordBatch {
			f.Add(soeFrame(f, previousSchema(f, RecordBatch), pc.value)[len(header):])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b payout.Batch
		err := c.DecodeBatch(append(header[:len(header):len(header)], body...), &b)
		if n := len(b.Transactions); negativeLen(n) || n > MaxTransactions || err != nil && !reflect.DeepEqual(b, payout.Batch{}) {
			t.Fatalf("%d transactions, %v", n, err)
		}
	})
}
