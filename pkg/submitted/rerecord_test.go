package submitted

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

func recordedTxs(n int, idf, reqf string, amount func(int) int64) []Transaction {
	txs := make([]Transaction, n)
	for i := range txs {
		txs[i] = Transaction{TransactionID: fmt.Sprintf(idf, i), RequestID: fmt.Sprintf(reqf, i), AmountInCents: amount(i)}
	}
	return txs
}

// A payout recorded twice (finish resumed after a crash between Record
// and state "done", with a listing that came back shorter) keeps the union
// of both transaction lists, bucketed as when each has its own field: a
// later recording appends to the buckets (it replaced them whole at first,
// found by a review).
func TestRecordedAgainKeepsEarlierBucketEntries(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	amt := func(i int) int64 { return int64(100 + i) }
	for _, c := range []struct {
		name        string
		first, then int
	}{{"one field per transaction", 100, 60}, {"bucketed", 300, 200}} {
		pid := "p-rerecord-" + strings.ReplaceAll(c.name, " ", "-")
		all := recordedTxs(c.first, "tx-%04d", "req-%04d", amt)
		p := Payout{PayoutID: pid, BatchID: "b-1", OriginAccountID: "acc"}
		if err := s.Record(ctx, p, all, time.Now()); err != nil {
			t.Fatal(err)
		}
		// The resumed run's listing (or the other replica's) misses some.
		if err := s.Record(ctx, p, all[:c.then], time.Now()); err != nil {
			t.Fatal(err)
		}
		lost := 0
		for _, tx := range all {
			got, ok, err := s.Lookup(ctx, pid, tx.TransactionID)
			if err != nil {
				t.Fatal(err)
			}
			if ok && (got.RequestID != tx.RequestID || got.AmountInCents != tx.AmountInCents) {
				t.Fatalf("%s: %s maps to %+v, want %s", c.name, tx.TransactionID, got, tx.RequestID)
			}
			if !ok {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%s: recorded %d then %d of them: %d mappings of the first record lost", c.name, c.first, c.then, lost)
		}
	}
}

// Within one layout a later Record supersedes an earlier one (the last
// entry wins). Across layouts (a small recording, then a large one) an
// earlier t: field and a later bucket entry that disagree map nothing, and
// the tracker asks the provider: the superseded request is never returned
// (a review found it returned at first).
func TestLayoutsThatDisagreeMapNothing(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	p := Payout{PayoutID: "p-mixed", BatchID: "b-1", OriginAccountID: "acc"}
	if err := s.Record(ctx, p, []Transaction{{TransactionID: "tx-x", RequestID: "req-old", AmountInCents: 100}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	later := recordedTxs(129, "tx-%04d", "req-%04d", func(int) int64 { return 1 })
	later[0] = Transaction{TransactionID: "tx-x", RequestID: "req-new", AmountInCents: 200}
	if err := s.Record(ctx, p, later, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Lookup(ctx, "p-mixed", "tx-x")
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("tx-x maps to %s/%d although its two recordings disagree; want no mapping (the provider is asked)",
			got.RequestID, got.AmountInCents)
	}
}

// a payout recorded small then large, or large then small, maps
// every transaction of either record to its own request.
func TestMixedLayoutsMapEveryTransaction(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	all := recordedTxs(300, "tx-%04d", "req-%04d", func(i int) int64 { return int64(i) - 150 })
	for _, order := range [][2]int{{100, 300}, {300, 100}} {
		pid := fmt.Sprint("p-union-", order[0], "-", order[1])
		for _, n := range order {
			if err := s.Record(ctx, Payout{PayoutID: pid, BatchID: "b", OriginAccountID: "a"}, all[:n], time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		for _, tx := range all {
			got, ok, err := s.Lookup(ctx, pid, tx.TransactionID)
			if err != nil || !ok || got.RequestID != tx.RequestID || got.AmountInCents != tx.AmountInCents {
				t.Fatalf("%s %s: %+v %v %v", pid, tx.TransactionID, got, ok, err)
			}
		}
	}
}

// ids that are prefixes/suffixes of one another within one bucket,
// ids holding ':' and digits or naming fixed fields, extreme amounts,
// request ids that look like entries; an empty requestId maps nothing.
func TestOddIdsInOneBucket(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	base := []string{"", "1", "1:", ":1", "11:1", "1:1", "t:", "b:5", "batchId", "originAccountId", "final", "abc", "3:abc"}
	var txs []Transaction
	seen := map[string]bool{}
	add := func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		i := len(txs)
		amounts := []int64{math.MinInt64, math.MaxInt64, -1, 0}
		txs = append(txs, Transaction{TransactionID: id, RequestID: fmt.Sprintf("%d:%s%d:", len(id), id, i), AmountInCents: amounts[i%4]})
	}
	for _, b := range base {
		add(b)
		// Extensions of b that land in b's bucket: prefix/suffix pairs.
		for k, found := 0, 0; found < 3 && k < 100000; k++ {
			for _, ext := range []string{b + fmt.Sprint(k), fmt.Sprint(k) + b, b + ":" + fmt.Sprint(k)} {
				if bucketOf(ext) == bucketOf(b) && !seen[ext] {
					add(ext)
					found++
				}
			}
		}
	}
	for len(txs) <= bucketsFrom {
		add(fmt.Sprint("pad-", len(txs)))
	}
	txs = append(txs, Transaction{TransactionID: "empty-req", RequestID: "", AmountInCents: 5})
	if err := s.Record(ctx, Payout{PayoutID: "p-odd", BatchID: "b", OriginAccountID: "a"}, txs, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().HLen(ctx, s.payoutKey("p-odd")).Val(); n > int64(len(payoutFields)+nBuckets) {
		t.Fatalf("not bucketed: %d fields", n)
	}
	for _, tx := range txs[:len(txs)-1] {
		got, ok, err := s.Lookup(ctx, "p-odd", tx.TransactionID)
		if err != nil || !ok || got.RequestID != tx.RequestID || got.AmountInCents != tx.AmountInCents {
			t.Fatalf("%q: %+v %v %v, want %q/%d", tx.TransactionID, got, ok, err, tx.RequestID, tx.AmountInCents)
		}
	}
	if got, ok, _ := s.Lookup(ctx, "p-odd", "empty-req"); ok {
		t.Fatalf("empty requestId maps to %+v", got)
	}
	for _, id := range []string{"12", "1:1:", "abc3", "x"} {
		if seen[id] {
			continue
		}
		if got, ok, _ := s.Lookup(ctx, "p-odd", id); ok {
			t.Fatalf("absent %q maps to %+v", id, got)
		}
	}
}

// a bucket whose tail is cut at any byte maps each transaction to
// its own request or to nothing, never to another's, and never panics.
// (A bucket missing its head is not: "1:17:10|2:11..." cut from a real
// bucket maps "1" to "11"'s request. Nothing writes such a value, since
// HSET replaces a field whole, so this is not tested as a bug.)
func TestTruncatedBucketMapsNoOtherRequest(t *testing.T) {
	var b []byte
	ids := []string{"1", "11", "1:1", "", "2:11", "a|b"}
	for i, id := range ids {
		b = appendEntry(b, id, int64(i*10), fmt.Sprintf("%d:%s", len(id), id))
	}
	full := string(b)
	for cut := 0; cut <= len(full); cut++ {
		for _, bad := range []string{full[:cut]} {
			for i, id := range ids {
				v, ok := findEntry(bad, id)
				if ok && v != fmt.Sprintf("%d|%d:%s", i*10, len(id), id) {
					t.Fatalf("bucket %q: %q maps to %q", bad, id, v)
				}
			}
		}
	}
}

// 10,000 transactions (events.MaxTransactions) in at most 64
// buckets, each mapping back; reports the bucket a webhook reads.
func TestLargestPayoutMaps(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	txs := recordedTxs(10000, "0b2f6a3e-4c1d-4e8a-9f00-%012d", "req-0b2f6a3e-4c1d-4e8a-9f00-%012d", func(i int) int64 { return int64(i) * 1_000_000 })
	if err := s.Record(ctx, Payout{PayoutID: "p-max", BatchID: "b", OriginAccountID: "a"}, txs, time.Now()); err != nil {
		t.Fatal(err)
	}
	maxLen := int64(0)
	for n := range nBuckets {
		if l := rs.Client().HStrLen(ctx, s.payoutKey("p-max"), bucketField(n)).Val(); l > maxLen {
			maxLen = l
		}
	}
	start := time.Now()
	for _, tx := range txs {
		got, ok, err := s.Lookup(ctx, "p-max", tx.TransactionID)
		if err != nil || !ok || got.RequestID != tx.RequestID || got.AmountInCents != tx.AmountInCents {
			t.Fatalf("%s: %+v %v %v", tx.TransactionID, got, ok, err)
		}
	}
	perBig := time.Since(start) / time.Duration(len(txs))
	if err := s.Record(ctx, Payout{PayoutID: "p-128", BatchID: "b", OriginAccountID: "a"}, txs[:128], time.Now()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for i := range len(txs) {
		if _, ok, err := s.Lookup(ctx, "p-128", txs[i%128].TransactionID); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	t.Logf("largest bucket %d bytes; %v per Lookup (10,000 transactions), %v (128, one field each)", maxLen, perBig,
		time.Since(start)/time.Duration(len(txs)))
	for n, want := range map[int]int64{128: 128, 129: nBuckets} {
		pid := fmt.Sprint("p-n-", n)
		if err := s.Record(ctx, Payout{PayoutID: pid, BatchID: "b"}, txs[:n], time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := rs.Client().HLen(ctx, s.payoutKey(pid)).Val() - int64(len(payoutFields)); got > want {
			t.Fatalf("%d transactions: %d mapping fields, want at most %d", n, got, want)
		}
	}
}
