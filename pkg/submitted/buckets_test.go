package submitted

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A payout of thousands of transactions is recorded in a few dozen bucket
// fields, and every transaction maps back to its own request and amount,
// whatever bytes its id and the requestId hold (the layout's separators
// included); an id the payout does not hold maps to nothing.
func TestBucketedMappingFindsEveryTransaction(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	odd := []string{"", ":", "12:", "|", "3:abc", "b:1", "t:x", "é\x00\xff", strings.Repeat("9", 40)}
	var txs []Transaction
	for i := range 2000 {
		id := fmt.Sprintf("0b2f6a3e-4c1d-4e8a-9f00-%012d", i)
		req := fmt.Sprintf("order-%d", i)
		if i < len(odd) {
			id = odd[i] + "-" + fmt.Sprint(i)
			req = "r|" + odd[i] + fmt.Sprint(i)
		}
		txs = append(txs, Transaction{TransactionID: id, RequestID: req, AmountInCents: int64(i*7 + 1)})
	}
	p := Payout{PayoutID: "p-big", BatchID: "b-big", OriginAccountID: "acc-1", PaymentType: "PAYROLL", TransactionCount: len(txs),
		SubmittedAt: time.UnixMilli(1_800_000_000_000)}
	if err := s.Record(ctx, p, txs, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().HLen(ctx, s.payoutKey("p-big")).Val(); n > int64(len(payoutFields)+nBuckets) {
		t.Fatalf("%d fields for %d transactions, want at most %d: one per transaction, not bucketed", n, len(txs), len(payoutFields)+nBuckets)
	}
	for _, tx := range txs {
		got, ok, err := s.Lookup(ctx, "p-big", tx.TransactionID)
		if err != nil || !ok {
			t.Fatalf("%q: found %v, %v", tx.TransactionID, ok, err)
		}
		want := Transaction{TransactionID: tx.TransactionID, RequestID: tx.RequestID, BatchID: "b-big", PayoutID: "p-big",
			AmountInCents: tx.AmountInCents, OriginAccountID: "acc-1"}
		if got != want {
			t.Fatalf("%q maps to %+v, want %+v", tx.TransactionID, got, want)
		}
	}
	for _, id := range []string{"0b2f6a3e-4c1d-4e8a-9f00-000000002000", "0b2f6a3e", ":", "", "b:0"} {
		if got, ok, err := s.Lookup(ctx, "p-big", id); err != nil || ok {
			t.Fatalf("absent %q maps to %+v (%v)", id, got, err)
		}
	}
}

// Payouts recorded one field per transaction (by an earlier version, or
// small ones, which still are, so that an earlier tracker reads them) map
// as before.
func TestLookupReadsOneFieldPerTransaction(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	small := []Transaction{{TransactionID: "tx-1", RequestID: "r-1", AmountInCents: 5}}
	if err := s.Record(ctx, Payout{PayoutID: "p-small", BatchID: "b-s", OriginAccountID: "acc"}, small, time.Now()); err != nil {
		t.Fatal(err)
	}
	if v := rs.Client().HGet(ctx, s.payoutKey("p-small"), "t:tx-1").Val(); v != "5|r-1" {
		t.Fatalf("a small payout's transaction field holds %q, want 5|r-1", v)
	}
	// A large payout in the earlier layout.
	if err := rs.Client().HSet(ctx, s.payoutKey("p-old"), "batchId", "b-o", "originAccountId", "acc",
		"t:tx-9", "900|r-9").Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ payout, tx, req string }{{"p-small", "tx-1", "r-1"}, {"p-old", "tx-9", "r-9"}} {
		got, ok, err := s.Lookup(ctx, c.payout, c.tx)
		if err != nil || !ok || got.RequestID != c.req {
			t.Fatalf("%s/%s: %+v %v %v, want %s", c.payout, c.tx, got, ok, err, c.req)
		}
	}
}

// The bucket of an id is part of the stored layout: these values must never
// change, or every payout recorded before would lose its mapping.
func TestBucketOfIsStable(t *testing.T) {
	// FNV-1a 32 modulo 64, computed apart (Python).
	for id, want := range map[string]int{"": 5, "a": 44, "0b2f6a3e-4c1d-4e8a-9f00-000000000000": 19,
		"3fa85f64-5717-4562-b3fc-2c963f66afa6": 62} {
		if got := bucketOf(id); got != want {
			t.Fatalf("bucketOf(%q) = %d, want %d", id, got, want)
		}
	}
}

// A transaction listed twice in one bucket maps as a field written twice
// did: to its last value. A bucket that does not read as entries maps
// nothing (the tracker asks the provider).
func TestFindEntry(t *testing.T) {
	b := string(appendEntry(appendEntry(appendEntry(nil, "x", 1, "r-1"), "y", 2, "r-2"), "x", 3, "r-3"))
	if v, ok := findEntry(b, "x"); !ok || v != "3|r-3" {
		t.Fatalf("x: %q %v, want the last entry 3|r-3", v, ok)
	}
	if v, ok := findEntry(b, "y"); !ok || v != "2|r-2" {
		t.Fatalf("y: %q %v", v, ok)
	}
	for _, bad := range []string{"1:x", "1:x5:1|r", "99:x", "a:x3:1|r", ":x", "1:x-1:", "1:x3:1|r junk", "9999999999:"} {
		if v, ok := findEntry(bad, "x"); ok {
			t.Fatalf("malformed bucket %q: found %q", bad, v)
		}
	}
}

// FuzzFindEntry: entries built by appendEntry are found with their values,
// and no bucket value makes findEntry panic.
func FuzzFindEntry(f *testing.F) {
	f.Add("tx", int64(5), "r", "junk")
	f.Add(":", int64(-1), "|", "1:")
	f.Fuzz(func(t *testing.T, id string, amount int64, req string, junk string) {
		b := string(appendEntry(appendEntry(nil, id+"~", amount+1, req), id, amount, req))
		v, ok := findEntry(b, id)
		if !ok || v != fmt.Sprint(amount, "|", req) {
			t.Fatalf("%q in %q: %q %v", id, b, v, ok)
		}
		_, _ = findEntry(junk, id)
		_, _ = findEntry(b+junk, id)
	})
}
