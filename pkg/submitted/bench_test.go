package submitted

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// BenchmarkRecord hands off one 2,000-transaction payout per iteration to a
// real Redis (one pipelined round trip: HSET, EXPIRE, ZADD), as the
// dispatcher does after a Wompi POST. It reports the cost per transaction,
// redis-server's CPU included.
func BenchmarkRecord(b *testing.B) {
	rs := testenv.RedisOwn(b)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	now := time.UnixMilli(1_800_000_000_000)
	txs := make([]Transaction, 2000)
	for i := range txs {
		txs[i] = Transaction{TransactionID: fmt.Sprintf("0b2f6a3e-4c1d-4e8a-9f00-%012d", i), RequestID: fmt.Sprintf("order-%d-seller-42", i),
			AmountInCents: int64(100000 + i)}
	}
	n := 0
	cpu := testenv.StartCPU(b, rs.Client())
	for b.Loop() {
		n++
		p := Payout{PayoutID: fmt.Sprint("bench-payout-", n), BatchID: "bench-batch", OriginAccountID: "acc", PaymentType: "PAYROLL",
			TotalAmountInCents: 1, TransactionCount: len(txs), SubmittedAt: now}
		if err := s.Record(ctx, p, txs, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(txs)), "ns/transaction")
	cpu.Report(b.N*len(txs), "transaction")
}

// BenchmarkRecordMany hands off a single-payout rail's batch per iteration:
// 2,000 payouts of one transaction each, in one pipelined round trip. It
// reports the cost per payout, redis-server's CPU included.
func BenchmarkRecordMany(b *testing.B) {
	rs := testenv.RedisOwn(b)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	now := time.UnixMilli(1_800_000_000_000)
	const size = 2000
	ps := make([]Payout, size)
	txs := make([][]Transaction, size)
	n := 0
	cpu := testenv.StartCPU(b, rs.Client())
	for b.Loop() {
		for i := range ps {
			n++
			id := fmt.Sprintf("smartfastpay:0b2f6a3e-4c1d-4e8a-9f00-%012d", n)
			ps[i] = Payout{PayoutID: id, BatchID: "bench-batch", OriginAccountID: "acc", PaymentType: "PAYROLL",
				TotalAmountInCents: int64(100000 + i), TransactionCount: 1, SubmittedAt: now}
			txs[i] = []Transaction{{TransactionID: id[len("smartfastpay:"):], RequestID: fmt.Sprintf("order-%d-seller-42", n),
				PayoutID: id, AmountInCents: int64(100000 + i)}}
		}
		if err := s.RecordMany(ctx, ps, txs, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/payout")
	cpu.Report(b.N*size, "payout")
}
