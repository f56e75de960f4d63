package wompi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

var refPageSeeds = []string{
	`{"status":200,"code":"OK","message":"ok","meta":{"trace_id":"t"},"data":{"page":1,"limit":1000,"total":2,"pages":1,"records":[{"id":"tx-1","reference":"req-1","status":"PENDING","amountInCents":100,"payeeInfo":{"name":"Ana","accountNumber":"123"},"failureReason":null},{"id":"tx-2","reference":"req-2","status":"APPROVED","extra":[1,2.5,-3e4,true,false,null,"x\\u00e9"]}]}}`,
	`{"data":{"records":[]}}`,
	`{"data":{}}`,
	`{"data":null}`,
	`{"DATA":{"page":1}}`,
	`{"data":{"page":1,"Page":2}}`,
	`{"data":{"records":[{"ID":"x"}]}}`,
	`{"data":{"records":[{"id":"a\\"b"}]}}`,
	`{"data":{"page":1.0}}`,
	`{"data":{"page":01}}`,
	`{"data":{"records":[null]}}`,
	`{"data":{"page":1}} x`,
	`{"data":{"page":1},"data":{"page":2}}`,
	`[{"id":"tx-1"}]`,
	`{"data":{"records":[{"id":"é"}]}}`,
	"{\"data\":{\"records\":[{\"id\":\"a\",\"x\":\"b\x01c\"}]}}", // a control byte in a skipped string
	`{"data":{"records":[{"id":"a","x":"\q"}]}}`,                 // an invalid escape in a skipped string
	`{"data":{"records":[{"id":"a"]}}`,                           // a record left open
	`{"data":{"records":[{"id":"a" "reference":"b"}]}}`,          // a missing comma
	// Long strings, with what ends their plain run at several offsets.
	`{"data":{"records":[{"id":"0123456789abcdefghij","reference":"0123456789abcdef\u00e9","x":"01234567\"89abcdef\\0123456"}]}}`,
	"{\"data\":{\"records\":[{\"id\":\"0123456789ab\x7fcdef\",\"x\":\"0123456789a\x1fbcdef\"}]}}",
	"{\"data\":{\"records\":[{\"id\":\"0123456789abcd\xc3\xa9\"}]}}",
}

// longStringPages are pages the fast path takes whose strings are long, with
// escapes and bytes beyond ASCII at several offsets.
var longStringPages = []string{
	"{\"data\":{\"records\":[{\"id\":\"tx-1\",\"x\":\"0123456789abcdef\xc3\xa9 0123456789 \xff\"}]}}",
	`{"data":{"records":[{"id":"01234567","reference":"0123456","status":"012345678"}]}}`,
	`{"data":{"records":[{"id":"0123456789abcdefghijklmno","reference":"r","x":"0123456789abcdefghijklmnop\"q\\rstuvwx"}]}}`,
}

// The fast path answers like encoding/json whenever it answers.
func FuzzRefPage(f *testing.F) {
	for _, s := range append(refPageSeeds, longStringPages...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := decodeRefPage(b)
		if !ok {
			return
		}
		var w struct {
			Data *plainPage[TransactionRef] `json:"data"`
		}
		if err := json.Unmarshal(b, &w); err != nil || w.Data == nil {
			t.Fatalf("fast path accepted %q; encoding/json: %v (data %v)", b, err, w.Data)
		}
		if want := Page[TransactionRef](*w.Data); !reflect.DeepEqual(p, want) {
			t.Fatalf("fast path read %q as %+v; encoding/json as %+v", b, p, want)
		}
	})
}

// The fast path takes the usual answer, and leaves every unusual one to the
// general path.
func TestRefPageFastPathScope(t *testing.T) {
	p, ok := decodeRefPage([]byte(refPageSeeds[0]))
	if !ok || p.Page != 1 || p.Limit != 1000 || p.Total != 2 || p.Pages != 1 || len(p.Records) != 2 ||
		p.Records[0] != (TransactionRef{ID: "tx-1", Reference: "req-1", Status: TransactionPending}) ||
		p.Records[1] != (TransactionRef{ID: "tx-2", Reference: "req-2", Status: TransactionApproved}) {
		t.Fatalf("usual page: %+v %v", p, ok)
	}
	for _, s := range refPageSeeds[3:] {
		if _, ok := decodeRefPage([]byte(s)); ok {
			t.Errorf("fast path took %s", s)
		}
	}
	want := []TransactionRef{{ID: "tx-1"}, {ID: "01234567", Reference: "0123456", Status: "012345678"},
		{ID: "0123456789abcdefghijklmno", Reference: "r"}}
	for i, s := range longStringPages {
		if p, ok := decodeRefPage([]byte(s)); !ok || len(p.Records) != 1 || p.Records[0] != want[i] {
			t.Errorf("fast path read %q as %+v, %v", s, p, ok)
		}
	}
}

func refPageOf(n int) []byte {
	b := []byte(`{"status":200,"code":"OK","message":"ok","meta":{"trace_id":"t"},"data":{"page":1,"limit":1000,"total":1000,"pages":1,"records":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"0b2f6a3e-4c1d-4e8a-9f00-00000000`...)
		b = append(b, byte('0'+i%10), byte('0'+i/10%10), byte('0'+i/100%10), byte('0'+i/1000%10))
		b = append(b, `","reference":"req-000123","status":"PENDING","amountInCents":2500000,"payeeInfo":{"legalIdType":"CC","legalId":"10000000","name":"Ana Payee","email":"ana@example.co","bankId":"b1","accountType":"AHORROS","accountNumber":"31234567894"},"createdAt":"2026-11-21T10:00:00.000Z","updatedAt":"2026-11-21T10:00:00.000Z"}`...)
	}
	return append(b, `]}}`...)
}

// BenchmarkRefPage reads a 1,000-transaction page as the dispatcher does
// after each POST: the fast path, then encoding/json for comparison.
func BenchmarkRefPage(b *testing.B) {
	page := refPageOf(1000)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if p, ok := decodeRefPage(page); !ok || len(p.Records) != 1000 {
				b.Fatal("fast path refused the page")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			var w struct {
				Data *plainPage[TransactionRef] `json:"data"`
			}
			if err := json.Unmarshal(page, &w); err != nil || len(w.Data.Records) != 1000 {
				b.Fatal(err)
			}
		}
	})
}

var itemPageSeeds = append([]string{
	`{"data":{"page":1,"limit":2,"total":2,"pages":1,"records":[{"id":"tx-1","reference":"req-1","status":"FAILED","amountInCents":-0,"failureReason":{"code":"D07","message":"Cuenta embargada"},"appliedAt":"2026-11-21T10:00:00.000Z","createdAt":1795255200000},{"id":"tx-2","reference":"req-2","status":"PENDING","failureReason":"R03: no account","appliedAt":null,"createdAt":"2026-11-21T05:00:00"}]}}`,
	`{"data":{"records":[{"createdAt":"2026-11-21T10:00:00\u002e000Z"}]}}`,
	`{"data":{"records":[{"createdAt":"not a time","appliedAt":true}]}}`,
	`{"data":{"records":[{"failureReason":5}]}}`,
	`{"data":{"records":[{"amountInCents":99999999999999999999}]}}`,
	`{"data":{"records":[{"amountInCents":null}]}}`,
	`{"data":{"records":[{"CreatedAt":"2026-11-21T10:00:00Z"}]}}`,
	`{"data":{"records":[{"createdAt":"2026-11-21T10:00:00Z","createdAt":"2026-11-22T10:00:00Z"}]}}`,
	`{"data":{"records":[{"createdAt":"2026-11-21T10:00:00Z\u00e9"}]}}`,
	`{"data":{"records":[{"createdAt":"` + "\x7f" + `"}]}}`,
}, refPageSeeds...)

// The transaction items' fast path answers like encoding/json whenever it
// answers.
func FuzzItemPage(f *testing.F) {
	for _, s := range append(itemPageSeeds, longStringPages...) {
		f.Add([]byte(s))
	}
	f.Add(refPageOf(3))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := decodeItemPage(b)
		if !ok {
			return
		}
		var w struct {
			Data *plainPage[transactionItem] `json:"data"`
		}
		if err := json.Unmarshal(b, &w); err != nil || w.Data == nil {
			t.Fatalf("fast path accepted %q; encoding/json: %v (data %v)", b, err, w.Data)
		}
		if want := Page[transactionItem](*w.Data); !reflect.DeepEqual(p, want) {
			t.Fatalf("fast path read %q as %+v; encoding/json as %+v", b, p, want)
		}
	})
}

// The items' fast path reads the usual page, failure reasons and times
// included, and leaves unusual ones to the general path.
func TestItemPageFastPathScope(t *testing.T) {
	p, ok := decodeItemPage([]byte(itemPageSeeds[0]))
	if !ok || len(p.Records) != 2 {
		t.Fatalf("usual page: %+v %v", p, ok)
	}
	r := p.Records[0]
	if r.ID != "tx-1" || r.Reference != "req-1" || r.Status != TransactionFailed || r.AmountInCents != 0 ||
		r.FailureReason != (FailureReason{Code: "D07", Message: "Cuenta embargada"}) ||
		!r.AppliedAt.Equal(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)) || !r.CreatedAt.Equal(r.AppliedAt.Time) {
		t.Errorf("first record: %+v", r)
	}
	if r := p.Records[1]; r.FailureReason.Code != "R03" || !r.AppliedAt.IsZero() || r.CreatedAt.IsZero() {
		t.Errorf("second record: %+v", r)
	}
	if p, ok := decodeItemPage(refPageOf(10)); !ok || len(p.Records) != 10 || p.Records[9].AmountInCents != 2500000 {
		t.Errorf("a page with payee data: %v %+v", ok, p)
	}
	for _, s := range []string{itemPageSeeds[3], itemPageSeeds[4], itemPageSeeds[5], itemPageSeeds[6], itemPageSeeds[7]} {
		if _, ok := decodeItemPage([]byte(s)); ok {
			t.Errorf("fast path took %s", s)
		}
	}
}

// BenchmarkItemPage reads a 1,000-transaction page as Rail.Items does
// (the dispatcher's list-back after each POST, the tracker's poll): the
// fast path, then encoding/json into the same type, then into Transaction
// (what Items decoded before).
func BenchmarkItemPage(b *testing.B) {
	page := refPageOf(1000)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if p, ok := decodeItemPage(page); !ok || len(p.Records) != 1000 {
				b.Fatal("fast path refused the page")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			var w struct {
				Data *plainPage[transactionItem] `json:"data"`
			}
			if err := json.Unmarshal(page, &w); err != nil || len(w.Data.Records) != 1000 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-transaction", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			var w struct {
				Data *plainPage[Transaction] `json:"data"`
			}
			if err := json.Unmarshal(page, &w); err != nil || len(w.Data.Records) != 1000 {
				b.Fatal(err)
			}
		}
	})
}

// A page's records are read in place: the only allocation per record is
// the one string its id and reference share (the records' array grows a
// few times).
func TestPageRecordsReadInPlace(t *testing.T) {
	page := refPageOf(100)
	if n := testing.AllocsPerRun(10, func() { decodeRefPage(page) }); n > 100+10 {
		t.Errorf("decodeRefPage: %v allocations for 100 records", n)
	}
	if n := testing.AllocsPerRun(10, func() { decodeItemPage(page) }); n > 100+10 {
		t.Errorf("decodeItemPage: %v allocations for 100 records", n)
	}
}
