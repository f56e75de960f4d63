package wompitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// txPage is the page the transactions listing answered with encoding/json
// before appendTxPage: the reference its bytes are held to. s.mu held.
func (s *Server) txPage(match []*txn, limit, page int) pageView {
	lo, hi, pv := paginate(len(match), limit, page)
	recs := make([]txView, 0, hi-lo)
	for _, t := range match[lo:hi] {
		recs = append(recs, s.viewTx(t))
	}
	pv.Records = recs
	return pv
}

// clientBody is a POST /payouts body as the Wompi client writes it, every
// optional field set.
func clientBody(t testing.TB, n int) []byte {
	req := &wompi.CreatePayoutRequest{Reference: "batch-1", AccountID: "acct-1", PaymentType: wompi.PaymentTypeProviders,
		DispersionDatetime: time.Date(2026, 3, 11, 14, 0, 0, 0, time.UTC),
		Recurring:          &wompi.Recurring{Interval: wompi.IntervalMonth, Months: 3, Description: "rent <monthly> & more"},
		TransactionStatus:  "APPROVED"}
	for i := range n {
		req.Transactions = append(req.Transactions, wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000000",
			BankID: BankID("1007"), AccountType: "AHORROS", AccountNumber: fmt.Sprint(1234567890 + i), Name: "Ana Pérez",
			Email: "ana@example.co", Amount: int64(1000 + i), Reference: fmt.Sprintf("req-%d", i), PersonType: "NATURAL",
			Phone: "3001234567", Description: "pago"})
	}
	return wompi.AppendCreatePayoutBody(nil, req)
}

// FuzzCreateBodyMatchesEncodingJSON: whenever the hand-written reader
// accepts a POST /payouts body, json.Unmarshal reads the same wireCreate
// from it without an error.
func FuzzCreateBodyMatchesEncodingJSON(f *testing.F) {
	f.Add(clientBody(f, 2))
	f.Add(wompi.AppendCreatePayoutBody(nil, &wompi.CreatePayoutRequest{Reference: "r", AccountID: "a", PaymentType: "OTHER"}))
	for _, s := range []string{
		`{"reference":"r","dispersionDatetime":null,"recurring":null,"transactions":null}`,
		`{"transactions":[]}`,
		`{"transactions":[{}]}`,
		`{"transactions":[null]}`,
		`{"transactions":[{"amount":1.5}]}`,
		`{"transactions":[{"amount":-0}]}`,
		`{"transactions":[{"amount":-5,"name":""}],"dispersionDatetime":""}`,
		`{"transactions":[{"amount":1e3}]}`,
		`{"transactions":[{"amount":"1"}]}`,
		`{"transactions":[{"amount":9007199254740993}]}`,
		`{"transactions":[{"reference":"a","Reference":"b"}]}`,
		`{"transactions":[{"reference":"a","reference":"b"}]}`,
		`{"transactions":[{"name":"a\"b"}]}`,
		`{"transactions":[{"name":null}]}`,
		`{"transactions":[{"x":[1,{"y":null}],"reference":"a"}],"other":{"z":"\u00e9"}}`,
		`{"recurring":{"interval":"month","months":3,"description":"d","x":true}}`,
		`{"recurring":{"Months":3}}`,
		`{"recurring":{"months":3.0}}`,
		`{"reference":"a","REFERENCE":"b"}`,
		`{"transactions":[{"reference":"a","email":"e"}],"transactions":[{"name":"b"}]}`,
		`{"recurring":{"months":3},"recurring":{"interval":"x"}}`,
		`{"dispersionDatetime":"a","dispersionDatetime":null}`,
		`{"recurring":{"months":3,"months":6,"Interval":"x"}}`,
		`{"accountıd":"x"}`,
		`{"referencſ":"x"}`,
		`{"tranſactions":[{"name":"x"}]}`,
		"{\"transactions\":[{\"ban\u212aId\":\"x\"}]}", // a Kelvin sign, which folds to k
		`{"recurring":{"monthſ":3}}`,
		`{"transactions":[{"name":"a","name":null}]}`,
		`{"recurring":{"interval":"m","interval":null}}`,
		`{"transactions":[{"amount":5,"amount":null}]}`,
		`{"reference":"a"} {}`,
		`{"reference":"a"}x`,
		`{"reference":"a",}`,
		`{"transactions":[{},]}`,
		`null`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := readCreateBody(raw)
		if !ok {
			return
		}
		var want wireCreate
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("ours accepted %q; encoding/json: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("from %q\n ours %s\n json %s", raw, gj, wj)
		}
	})
}

// TestCreateBodyFastPath: the body the Wompi client writes takes the
// hand-written path (else the load run measures encoding/json again), and
// reads as encoding/json reads it.
func TestCreateBodyFastPath(t *testing.T) {
	for _, n := range []int{0, 1, 500} {
		raw := clientBody(t, n)
		got, ok := readCreateBody(raw)
		if !ok {
			t.Fatalf("%d transactions: the client's body was declined", n)
		}
		var want wireCreate
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d transactions: read %+v, encoding/json %+v", n, got, want)
		}
		if len(got.Transactions) != n || got.Recurring == nil || got.DispersionDatetime == nil {
			t.Fatalf("read %+v", got)
		}
	}
}

// pageTxns are transactions in every state a page shows, with strings
// that need each kind of escape, and times equal to and different from
// the one before.
func pageTxns() []*txn {
	b := &batch{id: "payout-<1>"}
	at := time.Date(2026, 3, 10, 15, 4, 5, 6_000_000, time.UTC)
	var out []*txn
	for i, st := range []wompi.TransactionStatus{wompi.TransactionPending, wompi.TransactionApproved, wompi.TransactionFailed,
		wompi.TransactionCancelled, wompi.TransactionFailed} {
		t := &txn{id: fmt.Sprintf("tx-%d", i), b: b, status: st, bank: &bankEntry{code: "1007", name: "Bancolombia & Co"},
			w: wireTx{LegalIDType: "CC", LegalID: "1000000000", AccountType: "AHORROS", AccountNumber: "123",
				Name: "Ana \"Pérez\"\n\u2028", Email: "ana@example.co", Amount: int64(-5 + i*1_000_000_000_000), Reference: "ref\x01\xff"},
			createdAt: at, reason: FailureRule{Code: "D07", Message: "cuenta <inválida>"}}
		if i > 0 {
			t.appliedAt = at.Add(time.Duration(i) * time.Hour).In(time.FixedZone("x", -5*3600))
		}
		if i == 3 { // a page's times are written from a memo: one that differs
			t.createdAt = at.Add(time.Second)
		}
		if i == 4 {
			t.reason.Code = ""
			b2 := *b
			b2.id = ""
			t.b = &b2
		}
		out = append(out, t)
	}
	return out
}

// TestTxPageBytes: appendTxPage writes the bytes json.Marshal wrote for
// the same page, for every page of the listing (and one past its end),
// with payoutId shown and hidden.
func TestTxPageBytes(t *testing.T) {
	txs := pageTxns()
	for _, published := range []bool{false, true} {
		s := &Server{cfg: Config{PublishedOnly: published}}
		for _, lp := range [][2]int{{2, 1}, {2, 2}, {2, 3}, {2, 4}, {10, 1}, {1, 5}} {
			limit, page := lp[0], lp[1]
			env := envelope{Status: 200, Message: "OK", Data: s.txPage(txs, limit, page)}
			env.Meta.TraceID = "sim-trace&1"
			want, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			got := s.appendTxPage([]byte("x"), env.Meta.TraceID, txs, limit, page)
			if !bytes.Equal(got[1:], want) || got[0] != 'x' {
				t.Fatalf("published %v, limit %d page %d:\n ours %s\n json %s", published, limit, page, got, want)
			}
		}
	}
}

// FuzzTxViewMatchesEncodingJSON: appendTx writes json.Marshal(s.viewTx(t))
// for any strings a transaction can hold.
func FuzzTxViewMatchesEncodingJSON(f *testing.F) {
	f.Add("Ana Pérez", "ana@example.co", "req-1", "D07", "cuenta <inválida>", "FAILED", int64(1000), false)
	f.Add("\xff\u2028\"\\", "", "", "", "", "PENDING", int64(-1), true)
	f.Fuzz(func(t *testing.T, name, email, ref, code, msg, status string, amount int64, published bool) {
		s := &Server{cfg: Config{PublishedOnly: published}}
		tx := &txn{id: ref + "-id", b: &batch{id: email}, status: wompi.TransactionStatus(status),
			bank: &bankEntry{code: code, name: name}, reason: FailureRule{Code: code, Message: msg},
			w: wireTx{LegalIDType: code, LegalID: msg, AccountType: status, AccountNumber: ref, Name: name, Email: email,
				Amount: amount, Reference: ref},
			createdAt: time.Unix(amount%(1<<40), 0)}
		if len(name)%2 == 1 {
			tx.appliedAt = time.Unix(0, amount)
		}
		want, err := json.Marshal(s.viewTx(tx))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.appendTx(nil, tx, &txTimes{}); !bytes.Equal(got, want) {
			t.Fatalf("\n ours %s\n json %s", got, want)
		}
	})
}

// BenchmarkCreateBody compares the hand-written reader with encoding/json
// on a 2,000-transaction body as the client writes it.
func BenchmarkCreateBody(b *testing.B) {
	raw := clientBody(b, 2000)
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, ok := readCreateBody(raw); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			var req wireCreate
			if err := json.Unmarshal(raw, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTxPage compares the hand-written page with json.Marshal of
// the views, for a 2,000-transaction page of paid transactions.
func BenchmarkTxPage(b *testing.B) {
	b0 := &batch{id: "0c9a3f52-7d1e-4b8a-9f00-000000000001"}
	at := time.Date(2026, 3, 10, 15, 4, 5, 0, time.UTC)
	var txs []*txn
	for i := range 2000 {
		txs = append(txs, &txn{id: fmt.Sprintf("0c9a3f52-7d1e-4b8a-9f00-%012d", i), b: b0, status: wompi.TransactionApproved,
			bank: &bankEntry{code: "1007", name: "BANCOLOMBIA"}, createdAt: at, appliedAt: at,
			w: wireTx{LegalIDType: "CC", LegalID: "1000000000", AccountType: "AHORROS", AccountNumber: "1234567890",
				Name: "Ana Pérez", Email: "ana@example.co", Amount: 1_250_000, Reference: fmt.Sprintf("req-%d", i)}})
	}
	s := &Server{}
	b.Run("plain", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = s.appendTxPage(buf[:0], "sim-1", txs, 2000, 1)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			env := envelope{Status: 200, Message: "OK", Data: s.txPage(txs, 2000, 1)}
			env.Meta.TraceID = "sim-1"
			if _, err := json.Marshal(env); err != nil {
				b.Fatal(err)
			}
		}
	})
}
