package events

// The edges of the hand-written PayoutBatch codec and PayoutRequested
// encoder against hamba (every optional field, extreme numbers and times,
// the limits, byte mutations, aliasing), and older-schema batches whose
// array counts would corrupt hamba's slice (checkBlocks).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// edgeTimes are timestamps whose timestamp-millis encoding is easy to get
// wrong: the zero time, before 1970 with sub-millisecond nanoseconds,
// non-UTC locations, a monotonic reading, and instants far enough out that
// Unix()*1e3 overflows.
func edgeTimes() []time.Time {
	bogota := time.FixedZone("COT", -5*3600)
	kathmandu := time.FixedZone("NPT", 5*3600+45*60)
	return []time.Time{
		{},
		time.Unix(0, 0),
		time.Unix(0, 999_999),
		time.Unix(-1, 1),
		time.Unix(-1, 999_999_999),
		time.Unix(-1, 500_000).In(bogota),
		time.Date(1969, 12, 31, 23, 59, 59, 999_500_000, time.UTC),
		time.Date(1900, 1, 1, 0, 0, 0, 123_456_789, bogota),
		time.Date(2026, 11, 20, 10, 11, 12, 345_678_901, bogota),
		time.Date(2026, 11, 20, 10, 11, 12, 345_678_901, kathmandu),
		time.Now(),
		time.Now().In(bogota),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(-9999, 1, 1, 0, 0, 0, 1, kathmandu),
		time.Unix(math.MaxInt64/1000, 807_999_999),
		time.Unix(math.MaxInt64/1000+1, 0),
		time.Unix(math.MinInt64/1000, 0),
		time.Unix(math.MinInt64/1000-1, 999_999),
		time.Unix(1<<62, 999_999_999),
		time.Unix(-1<<62, 1),
	}
}

// edgeOptStrings: pointer i of a combination is set when bit i of mask is;
// empty chooses "" as its value.
func edgeOpt(mask, i int, empty bool) *string {
	if mask&(1<<i) == 0 {
		return nil
	}
	if empty {
		return ptr("")
	}
	return ptr("v" + strconv.Itoa(i) + "-ñ")
}

// checkBatchEncode: AppendBatch writes hamba's bytes for b, and both
// decoders read them to the same batch.
func checkBatchEncode(t *testing.T, c *Codec, name string, b *payout.Batch) {
	t.Helper()
	fast, err := c.AppendBatch(nil, b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	slow := hambaBatch(t, c, b)
	if !bytes.Equal(fast, slow) {
		t.Fatalf("%s: fast and hamba bytes differ (%d and %d bytes)", name, len(fast), len(slow))
	}
	var got payout.Batch
	if err := c.DecodeBatch(fast, &got); err != nil {
		t.Fatalf("%s: fast decode: %v", name, err)
	}
	ref, err := slowBatchDecode(c, fast[10:])
	if err != nil || !reflect.DeepEqual(got, ref) {
		t.Fatalf("%s: hamba decode %v, or it differs from the fast one", name, err)
	}
	if len(got.Transactions) != len(b.Transactions) {
		t.Fatalf("%s: %d transactions back, %d sent", name, len(got.Transactions), len(b.Transactions))
	}
}

// TestFastBatchEncodeMatrix: byte-for-byte equality with hamba for
// every combination of the batch's 11 optional pointers (nil, "" and a
// value), extreme numbers, awkward times, and arrays at and around the
// block length up to MaxTransactions.
func TestFastBatchEncodeMatrix(t *testing.T) {
	c := newSOECodec(t)
	for _, empty := range []bool{false, true} {
		for mask := range 1 << 11 {
			b := fullBatch(2)
			ben := &b.Transactions[mask%2].Beneficiary
			ben.BankID, ben.Phone, ben.PixKey = edgeOpt(mask, 0, empty), edgeOpt(mask, 1, empty), edgeOpt(mask, 2, empty)
			ben.Branch, ben.BranchDigit, ben.AccountDigit = edgeOpt(mask, 3, empty), edgeOpt(mask, 4, empty), edgeOpt(mask, 5, empty)
			b.Rail = edgeOpt(mask, 6, empty)
			if mask&(1<<7) == 0 {
				b.Schedule.DispersionDatetime = nil
			}
			if mask&(1<<8) == 0 {
				b.NotBefore = nil
			}
			if mask&(1<<9) == 0 {
				b.Schedule.Recurring = nil
			} else {
				b.Schedule.Recurring.Description = edgeOpt(mask, 10, empty)
			}
			if empty {
				b.BatchID, b.OriginAccountID = "", ""
				b.Transactions[0].RequestID, b.Transactions[0].Beneficiary.Name = "", ""
			}
			checkBatchEncode(t, c, "mask "+strconv.Itoa(mask), b)
		}
	}
	i64 := []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64, math.MaxInt32 + 1, math.MinInt32 - 1}
	i32 := []int32{0, 1, -1, 63, -64, math.MaxInt32, math.MinInt32}
	for i, tm := range edgeTimes() {
		b := fullBatch(3)
		b.CreatedAt = tm
		b.Schedule.DispersionDatetime = &tm
		b.NotBefore = &tm
		b.Transactions[i%3].RequestedAt = tm
		b.Transactions[(i+1)%3].RequestedAt = tm.Add(time.Nanosecond)
		b.TotalAmountInCents = i64[i%len(i64)]
		b.Transactions[0].AmountInCents = i64[(i+3)%len(i64)]
		b.Transactions[2].AmountInCents = i64[(i+5)%len(i64)]
		b.TransactionCount = i32[i%len(i32)]
		b.Attempt = i32[(i+2)%len(i32)]
		b.Schedule.Recurring.Months = i32[(i+4)%len(i32)]
		checkBatchEncode(t, c, "time "+tm.String(), b)
	}
	for _, n := range []int{0, 1, 999, 1000, 1001, 1999, 2000, 2001, 10000} {
		b := fullBatch(n)
		for j := range b.Transactions {
			tx := &b.Transactions[j]
			tx.RequestedAt = time.Unix(int64(j)-5000, int64(j)*7919).In(time.FixedZone("X", j))
			tx.AmountInCents = int64(j) * 1_000_003
			tx.Beneficiary.Name = strings.Repeat("n", j%300)
		}
		checkBatchEncode(t, c, strconv.Itoa(n)+" transactions", b)
		if n == 0 {
			b.Transactions = nil
			checkBatchEncode(t, c, "nil transactions", b)
		}
	}
}

// TestFastRequestEncodeMatrix: the same for PayoutRequested, its
// metadata map with 0, 1, 999, 1000, 1001 and 2000 entries (bytes compared
// up to one entry; beyond that the lengths, the block counts and what
// both decoders read).
func TestFastRequestEncodeMatrix(t *testing.T) {
	c := newSOECodec(t)
	rc := &c.recs[RecordRequest]
	check := func(name string, r *payout.Request) {
		t.Helper()
		fast, err := c.AppendRequest(nil, r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		slow, err := c.encode(nil, rc, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Metadata) <= 1 && !bytes.Equal(fast, slow) {
			t.Fatalf("%s: fast %x\nhamba %x", name, fast, slow)
		}
		if len(fast) != len(slow) {
			t.Fatalf("%s: fast %d bytes, hamba %d", name, len(fast), len(slow))
		}
		if f, s := metadataBlocks(t, c, r, fast), metadataBlocks(t, c, r, slow); !reflect.DeepEqual(f, s) {
			t.Fatalf("%s: metadata blocks %v, hamba %v", name, f, s)
		}
		back, err := slowDecode(t, c, fast[10:])
		if err != nil {
			t.Fatalf("%s: hamba decode: %v", name, err)
		}
		var fb payout.Request
		if err := c.DecodeRequest(fast, &fb); err != nil || !reflect.DeepEqual(fb, back) {
			t.Fatalf("%s: fast decode %v, or it differs from hamba's", name, err)
		}
		if len(r.Metadata) > 0 && !reflect.DeepEqual(back.Metadata, r.Metadata) {
			t.Fatalf("%s: metadata %d entries back, %d sent", name, len(back.Metadata), len(r.Metadata))
		}
	}
	for _, empty := range []bool{false, true} {
		for mask := range 1 << 10 {
			r := fullRequest()
			ben := &r.Beneficiary
			ben.BankID, ben.Phone, ben.PixKey = edgeOpt(mask, 0, empty), edgeOpt(mask, 1, empty), edgeOpt(mask, 2, empty)
			ben.Branch, ben.BranchDigit, ben.AccountDigit = edgeOpt(mask, 3, empty), edgeOpt(mask, 4, empty), edgeOpt(mask, 5, empty)
			r.Rail = edgeOpt(mask, 6, empty)
			if mask&(1<<7) == 0 {
				r.DispersionDatetime = nil
			}
			if mask&(1<<8) == 0 {
				r.Recurring = nil
			} else {
				r.Recurring.Description = edgeOpt(mask, 9, empty)
			}
			switch mask % 3 {
			case 0:
				r.Metadata = nil
			case 1:
				r.Metadata = map[string]string{}
			default:
				r.Metadata = map[string]string{"": ""}
			}
			if empty {
				r.RequestID, r.Currency, r.Beneficiary.Email = "", "", ""
			}
			check("mask "+strconv.Itoa(mask), r)
		}
	}
	for i, tm := range edgeTimes() {
		r := fullRequest()
		r.Metadata = map[string]string{"k": "v"}
		r.RequestedAt, r.DispersionDatetime = tm, &tm
		r.AmountInCents = []int64{math.MaxInt64, math.MinInt64, 0, -1}[i%4]
		r.Recurring.Months = []int32{math.MaxInt32, math.MinInt32, 0, -1}[i%4]
		check("time "+tm.String(), r)
	}
	for _, n := range []int{999, 1000, 1001, 2000} {
		r := typicalRequest()
		r.Metadata = map[string]string{}
		for i := range n {
			r.Metadata["k"+strconv.Itoa(i)] = strings.Repeat("v", i%5)
		}
		check(strconv.Itoa(n)+" metadata entries", r)
	}
}

// edgeTx is the encoding of one transaction of the current schema.
func edgeTx(t *testing.T, i int) []byte {
	t.Helper()
	ben := fullBeneficiary()
	if i%2 == 1 {
		ben = withoutRailFields(ben)
	}
	b := appendString(nil, "req-"+strconv.Itoa(i))
	b, err := appendBeneficiary(b, &ben, "t")
	if err != nil {
		t.Fatal(err)
	}
	b = appendLong(b, int64(i)*100)
	return appendMillis(b, time.UnixMilli(int64(i)))
}

// edgeHead is a batch's fields before its transactions: ids "b" and "a",
// PAYROLL, no schedule.
func edgeHead() []byte {
	return append(appendString(appendString(nil, "b"), "a"), 0, 0, 0)
}

// edgeTail ends the array, then total, count, createdAt, attempt 0, null
// notBefore and rail.
var edgeTail = []byte{0, 0, 0, 0, 0, 0, 0}

// edgeBlocks builds a body whose transactions array has the given blocks;
// sizeMode 0 writes positive counts (no byte size), 1 negative counts and
// the true byte size, 2 negative counts and a wrong (negative) byte size.
func edgeBlocks(t *testing.T, blocks []int, sizeMode int) []byte {
	body := edgeHead()
	k := 0
	for _, n := range blocks {
		var data []byte
		for range n {
			data = append(data, edgeTx(t, k)...)
			k++
		}
		switch sizeMode {
		case 0:
			body = appendLong(body, int64(n))
		case 1:
			body = appendLong(appendLong(body, -int64(n)), int64(len(data)))
		default:
			body = appendLong(appendLong(body, -int64(n)), -7)
		}
		body = append(body, data...)
	}
	return append(body, edgeTail...)
}

// decodeBoth runs the fast decoder (through DecodeBatch) and hamba on body
// and fails unless they agree: both accept with the same batch, or both
// refuse with the same class of error.
func decodeBoth(t *testing.T, c *Codec, name string, body []byte) (payout.Batch, error) {
	t.Helper()
	b, err, mismatch := decodeBothClass(t, c, name, body)
	if mismatch != "" {
		t.Fatal(mismatch)
	}
	return b, err
}

// decodeBothClass is decodeBoth that reports a difference in the error's
// class (ErrTruncated or ErrMalformed) instead of failing on it.
func decodeBothClass(t *testing.T, c *Codec, name string, body []byte) (payout.Batch, error, string) {
	t.Helper()
	v := append(append([]byte{}, c.recs[RecordBatch].header...), body...)
	var fast payout.Batch
	ferr := c.DecodeBatch(v, &fast)
	slow, serr := slowBatchDecode(c, body)
	if (ferr == nil) != (serr == nil) {
		t.Fatalf("%s: fast %v, hamba %v", name, ferr, serr)
	}
	if ferr == nil {
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: fast and hamba decode differently", name)
		}
		return fast, nil, ""
	}
	if !reflect.DeepEqual(fast, payout.Batch{}) {
		t.Fatalf("%s: the batch is not zero after %v", name, ferr)
	}
	if errors.Is(ferr, ErrTruncated) != errors.Is(serr, ErrTruncated) || errors.Is(ferr, ErrMalformed) != errors.Is(serr, ErrMalformed) {
		return fast, ferr, name + ": fast " + ferr.Error() + ", hamba " + serr.Error() + ": not the same class"
	}
	return fast, ferr, ""
}

// TestFastBatchDecodeLimits: MaxTransactions exactly, over several blocks of
// every header form, is read, one more is refused wherever it falls;
// a string of MaxStringBytes is read, one byte more refused.
func TestFastBatchDecodeLimits(t *testing.T) {
	c := newSOECodec(t)
	ok := [][]int{{MaxTransactions}, {3333, 3333, 3334}, {1, MaxTransactions - 1}, {MaxTransactions - 1, 1}}
	over := [][]int{{MaxTransactions + 1}, {5000, 5001}, {MaxTransactions, 1}, {1, MaxTransactions}, {1, 1, MaxTransactions - 1}}
	for mode := range 3 {
		for _, bl := range ok {
			b, err := decodeBoth(t, c, "ok "+strconv.Itoa(mode), edgeBlocks(t, bl, mode))
			if err != nil || len(b.Transactions) != MaxTransactions {
				t.Fatalf("%v mode %d: %d transactions, %v", bl, mode, len(b.Transactions), err)
			}
			for i := range b.Transactions {
				if tx := &b.Transactions[i]; tx.RequestID != "req-"+strconv.Itoa(i) || tx.AmountInCents != int64(i)*100 {
					t.Fatalf("%v: transaction %d is %s %d", bl, i, tx.RequestID, tx.AmountInCents)
				}
			}
		}
		for _, bl := range over {
			if _, err := decodeBoth(t, c, "over", edgeBlocks(t, bl, mode)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v mode %d: %v", bl, mode, err)
			}
		}
	}
	// The fast decoder alone (hamba corrupts memory on these; see
	// TestOlderBatchBlockOverflow): a block count of -2^63, and
	// counts whose sum overflows, anywhere in the array.
	for _, counts := range [][]int64{{-1 << 63}, {1, -1 << 63}, {-1 << 63, 1}, {1, 1<<63 - 1, 1}, {1<<63 - 1, 1<<63 - 1}} {
		body := edgeHead()
		for _, n := range counts {
			body = appendLong(body, n)
			if n < 0 {
				body = appendLong(body, 0)
			}
			if n == 1 {
				body = append(body, edgeTx(t, 0)...)
			}
		}
		body = append(body, edgeTail...)
		var b payout.Batch
		v := append(append([]byte{}, c.recs[RecordBatch].header...), body...)
		if err := c.DecodeBatch(v, &b); !errors.Is(err, ErrMalformed) || !reflect.DeepEqual(b, payout.Batch{}) {
			t.Fatalf("counts %v: %v", counts, err)
		}
	}
	big := strings.Repeat("z", MaxStringBytes)
	for _, n := range []int{MaxStringBytes, MaxStringBytes + 1} {
		s := big
		if n > MaxStringBytes {
			s += "z"
		}
		for where := range 3 {
			bt := fullBatch(2)
			switch where {
			case 0:
				bt.BatchID = s
			case 1:
				bt.Transactions[1].Beneficiary.Phone = &s
			case 2:
				bt.Rail = &s
			}
			v, err := c.AppendBatch(nil, bt)
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeBoth(t, c, "string of "+strconv.Itoa(n), v[10:])
			if (err == nil) != (n == MaxStringBytes) {
				t.Fatalf("a string of %d bytes at %d: %v", n, where, err)
			}
		}
	}
}

// TestFastBatchDecodeMutations: every strict prefix, trailing bytes, and
// every single-byte change of a batch with all its optional fields are
// read the same way by the fast decoder and hamba (same batch, or both
// refuse), and a refused batch is zero. The error class may differ (both
// are permanent): a varint longer than its type is ErrMalformed for the
// fast decoder, ErrTruncated for hamba reading from a byte slice, and a
// block count larger than the bytes left is ErrTruncated for the fast
// decoder where hamba may first meet a bad element (ErrMalformed); the
// differences are logged.
func TestFastBatchDecodeMutations(t *testing.T) {
	c := newSOECodec(t)
	bt := fullBatch(3)
	bt.Schedule.Recurring.Description = ptr("d")
	bt.Transactions[0].Beneficiary.Name = ""
	v, err := c.AppendBatch(nil, bt)
	if err != nil {
		t.Fatal(err)
	}
	body := v[10:]
	for n := range len(body) {
		if _, err := decodeBoth(t, c, "prefix "+strconv.Itoa(n), body[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	for _, tail := range [][]byte{{0}, {2, 0}, {0xff}, []byte("xyz")} {
		if _, err := decodeBoth(t, c, "trailing", append(append([]byte{}, body...), tail...)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing %x: %v", tail, err)
		}
	}
	var classDiffs []string
	for i := range body {
		for _, x := range []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x0f, 0x3f, 0x40, 0x7f, 0x80, 0xfe, 0xff} {
			m := append([]byte{}, body...)
			m[i] = x
			if _, _, mismatch := decodeBothClass(t, c, "byte "+strconv.Itoa(i)+"="+strconv.Itoa(int(x)), m); mismatch != "" {
				classDiffs = append(classDiffs, mismatch)
			}
		}
	}
	if len(classDiffs) > 0 {
		t.Logf("%d of %d mutations refused by both in different classes, e.g. %s", len(classDiffs), 12*len(body), classDiffs[0])
	}
}

// TestFastBatchDecodeAliasing: a decoded batch shares nothing with the input
// bytes, with another decode, or between its own optional fields (the slab
// across several of its chunks included), and a batch kept from an earlier
// decode survives the next one into the same variable.
func TestFastBatchDecodeAliasing(t *testing.T) {
	c := newSOECodec(t)
	src := fullBatch(60) // 30 full beneficiaries: 180 optional strings, over one slab
	src.Rail = ptr("wompi")
	v, err := c.AppendBatch(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	buf := append([]byte{}, v...)
	var a payout.Batch
	if err := c.DecodeBatch(buf, &a); err != nil {
		t.Fatal(err)
	}
	kept := a // a copy of the struct; its slices and pointers are shared
	keptTx := a.Transactions
	for i := range buf {
		buf[i] = 0xAA // the caller reuses its buffer
	}
	var b payout.Batch
	if err := c.DecodeBatch(v, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("a decode changed when its input buffer was overwritten")
	}
	// Every optional pointer of a and b is distinct.
	seen := map[unsafe.Pointer]string{}
	add := func(p *string, name string) {
		if p == nil {
			return
		}
		if prev, dup := seen[unsafe.Pointer(p)]; dup {
			t.Fatalf("%s and %s share one pointer", prev, name)
		}
		seen[unsafe.Pointer(p)] = name
	}
	for k, x := range []*payout.Batch{&a, &b} {
		add(x.Rail, "rail")
		add(x.Schedule.Recurring.Description, "description")
		for i := range x.Transactions {
			ben := &x.Transactions[i].Beneficiary
			for j, p := range []*string{ben.BankID, ben.Phone, ben.PixKey, ben.Branch, ben.BranchDigit, ben.AccountDigit} {
				add(p, strconv.Itoa(k)+"/"+strconv.Itoa(i)+"/"+strconv.Itoa(j))
			}
		}
	}
	if len(seen) < 2*(optSlab+1) {
		t.Fatalf("only %d optional strings: the slab's second chunk is not exercised", len(seen))
	}
	// Writing through every pointer of a changes that field only.
	n := 0
	for i := range a.Transactions {
		ben := &a.Transactions[i].Beneficiary
		for _, p := range []*string{ben.BankID, ben.Phone, ben.PixKey, ben.Branch, ben.BranchDigit, ben.AccountDigit} {
			if p != nil {
				*p = "w" + strconv.Itoa(n)
				n++
			}
		}
	}
	*a.Rail = "mutated"
	a.Transactions[0].RequestID = "mutated"
	a.Transactions[0].AmountInCents = -1
	*a.Schedule.DispersionDatetime = time.Time{}
	*a.NotBefore = time.Time{}
	a.Schedule.Recurring.Months = 99
	n = 0
	for i := range a.Transactions {
		ben := &a.Transactions[i].Beneficiary
		for _, p := range []*string{ben.BankID, ben.Phone, ben.PixKey, ben.Branch, ben.BranchDigit, ben.AccountDigit} {
			if p != nil {
				if *p != "w"+strconv.Itoa(n) {
					t.Fatalf("transaction %d: an optional field reads %q, want w%d", i, *p, n)
				}
				n++
			}
		}
	}
	var again payout.Batch
	if err := c.DecodeBatch(v, &again); err != nil || !reflect.DeepEqual(b, again) {
		t.Fatalf("mutating one decoded batch changed another (%v)", err)
	}
	// Decoding into a again leaves what was kept of it alone.
	other := fullBatch(2)
	other.BatchID = "other"
	ov, err := c.AppendBatch(nil, other)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := append([]payout.Transaction{}, keptTx...)
	if err := c.DecodeBatch(ov, &a); err != nil {
		t.Fatal(err)
	}
	if kept.BatchID != src.BatchID || !reflect.DeepEqual(keptTx, snapshot) || &a.Transactions[0] == &keptTx[0] {
		t.Fatal("a decode into a batch changed what was kept of its previous value")
	}
}

// TestFastEncodeErrorDst: on an encoding error AppendBatch and
// AppendRequest hand back dst itself (same length, content and array).
// Unlike hamba's path they have written into dst's spare capacity: logged,
// as no caller (ingest, dispatch, localrun: all pass nil or a fresh slice)
// keeps anything there.
func TestFastEncodeErrorDst(t *testing.T) {
	c := newSOECodec(t)
	bad := fullBatch(1500)
	bad.Transactions[1400].Beneficiary.AccountType = "NOPE" // after a whole block
	badReq := fullRequest()
	badReq.Recurring.Interval = "WEEK" // after most of the record
	for _, enc := range []struct {
		name string
		f    func([]byte) ([]byte, error)
	}{
		{"batch", func(d []byte) ([]byte, error) { return c.AppendBatch(d, bad) }},
		{"request", func(d []byte) ([]byte, error) { return c.AppendRequest(d, badReq) }},
	} {
		backing := make([]byte, 4, 1<<20)
		copy(backing, "kept")
		for i := 4; i < cap(backing); i++ {
			backing[:cap(backing)][i] = 0x5A
		}
		out, err := enc.f(backing)
		if err == nil {
			t.Fatalf("%s: encoded", enc.name)
		}
		if string(out) != "kept" || cap(out) != cap(backing) || unsafe.SliceData(out) != unsafe.SliceData(backing) {
			t.Fatalf("%s: returned %q (cap %d), not dst", enc.name, out, cap(out))
		}
		spare := backing[4:cap(backing)]
		if i := bytes.IndexFunc(spare, func(r rune) bool { return r != 0x5A }); i >= 0 {
			t.Logf("%s: an error left bytes written in dst's spare capacity (first at len+%d)", enc.name, i)
		}
		out, err = enc.f(nil)
		if err == nil || len(out) != 0 {
			t.Fatalf("%s from nil: %q, %v", enc.name, out, err)
		}
		if out != nil {
			t.Logf("%s: an error with a nil dst returns a non-nil empty slice (cap %d)", enc.name, cap(out))
		}
	}
}

// TestOlderBatchBlockOverflow: a PayoutBatch of the previous schema
// (still read by hamba) whose array block counts make hamba's running
// slice length negative (a count of -2^63, or counts summing past 2^63-1)
// followed by another block makes hamba write transactions outside any
// slice: onto runtime.zerobase and the globals after it, or past the end
// of a heap object. checkBlocks refuses such a body before hamba reads it
// (a check of the length after hamba returned is too late). The decode
// runs in a child process, which the corruption would crash or hang, or
// which would find zerobase overwritten.
func TestOlderBatchBlockOverflow(t *testing.T) {
	if which := os.Getenv("OLDER_BATCH_CHILD"); which != "" {
		edgeChild(t, which)
		return
	}
	if testing.Short() {
		t.Skip("runs child processes")
	}
	for _, which := range []string{"minint", "sum"} {
		// A corrupted runtime may not even time itself out: the child is
		// killed after a minute.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOlderBatchBlockOverflow$", "-test.timeout=30s", "-test.count=1")
		cmd.Env = append(os.Environ(), "OLDER_BATCH_CHILD="+which)
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("OLDER-BATCH-CHILD-OK")) {
			s := string(out)
			if len(s) > 1200 {
				s = s[:1200] + "..."
			}
			t.Errorf("%s: decoding an older-schema batch crashed or corrupted the process (%v):\n%s", which, err, s)
		}
	}
}

func edgeChild(t *testing.T, which string) {
	c := newSOECodec(t)
	tx := func(b []byte) []byte { // a Transaction of the previous schema
		b = appendString(b, "REQ-EVIL")
		b = append(b, 0) // CC
		for range 4 {
			b = appendString(b, "x")
		}
		b = append(b, 0, 0) // bankId null, AHORROS
		b = appendString(b, "acct")
		return append(b, 2, 2) // amount, requestedAt
	}
	body := edgeHead()
	switch which {
	case "minint": // the case 48598b2 meant to close, plus one more block
		body = appendLong(appendLong(body, -1<<63), 0)
		body = tx(appendLong(body, 1))
	case "sum": // no -2^63 at all: 1 + (2^63-1) wraps to -2^63
		body = tx(appendLong(body, 1))
		body = appendLong(body, 1<<63-1)
		body = appendLong(body, 100)
		for range 100 {
			body = tx(body)
		}
	}
	body = append(body, 0, 0, 0, 0, 0, 0) // end, total, count, createdAt, attempt, notBefore (no rail)
	v := binary.LittleEndian.AppendUint64([]byte{soeMagic0, soeMagic1}, previousFingerprints[RecordBatch])
	// A zero-length array made at run time points at runtime.zerobase.
	zb := unsafe.Pointer(reflect.MakeSlice(reflect.TypeOf([]payout.Transaction{}), 0, 0).Pointer())
	before := append([]byte{}, unsafe.Slice((*byte)(zb), 64)...)
	var got payout.Batch
	err := c.DecodeBatch(append(v, body...), &got)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("decode: %v", err)
	}
	if after := unsafe.Slice((*byte)(zb), 64); !bytes.Equal(before, after) {
		t.Fatalf("runtime.zerobase and what follows it overwritten:\nbefore %x\nafter  %x", before, after)
	}
	keep := make([][]payout.Transaction, 20000)
	for i := range keep {
		keep[i] = make([]payout.Transaction, 1)
		keep[i][0].RequestID = "ok"
	}
	runtime.GC()
	runtime.GC()
	for i := range keep {
		if keep[i][0].RequestID != "ok" {
			t.Fatalf("heap object %d corrupted", i)
		}
	}
	os.Stdout.WriteString("OLDER-BATCH-CHILD-OK\n")
}
