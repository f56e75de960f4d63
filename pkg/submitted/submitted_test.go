package submitted

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

func TestRecordLookupAndSharedPolling(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	now := time.UnixMilli(1_800_000_000_000)
	var txs []Transaction
	for i := range 3 {
		txs = append(txs, Transaction{TransactionID: fmt.Sprint("tx-", i), RequestID: fmt.Sprint("req-", i), BatchID: "b-1", PayoutID: "p-1", AmountInCents: int64(100 + i), OriginAccountID: "acc"})
	}
	if err := s.Record(ctx, Payout{PayoutID: "p-1", BatchID: "b-1", OriginAccountID: "acc", PaymentType: "PAYROLL", TotalAmountInCents: 303, TransactionCount: 3, SubmittedAt: now}, txs, now); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Lookup(ctx, "tx-2")
	if err != nil || !ok || got != txs[2] {
		t.Fatalf("Lookup = %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.Lookup(ctx, "tx-unknown"); ok {
		t.Fatal("unknown transaction found")
	}
	p, ok, err := s.Payout(ctx, "p-1")
	if err != nil || !ok || p.BatchID != "b-1" || p.TotalAmountInCents != 303 || !p.SubmittedAt.Equal(now) {
		t.Fatalf("Payout = %+v %v %v", p, ok, err)
	}

	// Two replicas claim at once: the payout goes to exactly one.
	a, _ := s.ClaimDue(ctx, now, time.Minute, 10)
	b, _ := s.ClaimDue(ctx, now, time.Minute, 10)
	if !slices.Equal(a, []string{"p-1"}) || len(b) != 0 {
		t.Fatalf("claims = %v and %v", a, b)
	}
	// The lease passes: claimable again.
	if c, _ := s.ClaimDue(ctx, now.Add(2*time.Minute), time.Minute, 10); !slices.Equal(c, []string{"p-1"}) {
		t.Fatalf("after lease: %v", c)
	}
	if err := s.Done(ctx, "p-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, "p-1", now); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Scheduled(ctx); n != 0 {
		t.Fatalf("Reschedule brought back a finished payout: %d scheduled", n)
	}
	if ok, _ := s.Ready(ctx); ok {
		t.Fatal("fresh schedule reported ready")
	}
	s.MarkReady(ctx)
	if ok, _ := s.Ready(ctx); !ok {
		t.Fatal("MarkReady not seen")
	}
}
