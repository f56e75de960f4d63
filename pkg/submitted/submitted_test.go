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
	got, ok, err := s.Lookup(ctx, "p-1", "tx-2")
	if err != nil || !ok || got != txs[2] {
		t.Fatalf("Lookup = %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.Lookup(ctx, "p-1", "tx-unknown"); ok {
		t.Fatal("unknown transaction found")
	}
	if _, ok, _ := s.Lookup(ctx, "p-unknown", "tx-2"); ok {
		t.Fatal("transaction found under an unknown payout")
	}
	// A requestId may hold the separator: it is kept whole.
	odd := Transaction{TransactionID: "tx-odd", RequestID: "req|with|bars", BatchID: "b-2", PayoutID: "p-2", AmountInCents: 7, OriginAccountID: "acc"}
	if err := s.Record(ctx, Payout{PayoutID: "p-2", BatchID: "b-2", OriginAccountID: "acc"}, []Transaction{odd}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.Lookup(ctx, "p-2", "tx-odd"); !ok || got != odd {
		t.Fatalf("Lookup = %+v %v", got, ok)
	}
	if ttl := rs.Client().TTL(ctx, s.payoutKey("p-2")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("payout hash TTL %v", ttl)
	}
	// The poll digest rides on the payout hash.
	if err := s.SetPollDigest(ctx, "p-2", "d1"); err != nil {
		t.Fatal(err)
	}
	if p, ok, _ := s.Payout(ctx, "p-2"); !ok || p.PollDigest != "d1" || p.BatchID != "b-2" {
		t.Fatalf("Payout after SetPollDigest = %+v %v", p, ok)
	}
	if err := s.Done(ctx, "p-2"); err != nil {
		t.Fatal(err)
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

// A rebuild marks the schedule ready only if Redis kept what was written
// since it began: not after its rebuild key was lost (a flush, a restart),
// even if another rebuild began since; of rebuilds running at once, the
// first to end marks it.
func TestMarkReadyAfterOnlyWhatTheRebuildKept(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	lost, err := s.BeginRebuild(ctx, "r-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().Del(ctx, s.rebuildKey()).Err(); err != nil { // lost with Redis's data
		t.Fatal(err)
	}
	after, err := s.BeginRebuild(ctx, "r-2", time.Minute) // begun after the loss
	if err != nil || after == lost {
		t.Fatalf("generation after the loss: %q (before: %q) %v", after, lost, err)
	}
	if ok, err := s.MarkReadyAfter(ctx, lost); err != nil || ok {
		t.Fatalf("marked ready after a loss during the rebuild: %v %v", ok, err)
	}
	if ok, _ := s.Ready(ctx); ok {
		t.Fatal("schedule reported ready")
	}
	same, err := s.BeginRebuild(ctx, "r-3", time.Minute) // begun while r-2 runs
	if err != nil || same != after {
		t.Fatalf("generation of a concurrent rebuild: %q, want %q %v", same, after, err)
	}
	if ok, err := s.MarkReadyAfter(ctx, same); err != nil || !ok {
		t.Fatalf("the rebuild did not mark it: %v %v", ok, err)
	}
	if ok, _ := s.Ready(ctx); !ok {
		t.Fatal("MarkReadyAfter not seen")
	}
	if ok, _ := s.MarkReadyAfter(ctx, after); ok {
		t.Fatal("the schedule was marked twice by one generation")
	}
	// A rebuild key written on another Redis process (a failover since):
	// that generation can never mark the schedule, so a rebuild begins a
	// new one.
	if err := rs.Client().Set(ctx, s.rebuildKey(), "r-4:0123456789abcdef", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	next, err := s.BeginRebuild(ctx, "r-5", time.Minute)
	if err != nil || next == "r-4:0123456789abcdef" {
		t.Fatalf("generation after a failover: %q %v", next, err)
	}
	if ok, err := s.MarkReadyAfter(ctx, next); err != nil || !ok {
		t.Fatalf("the rebuild after a failover did not mark it: %v %v", ok, err)
	}
}

// A whole rebuild by a tracker without some rails' credentials leaves
// them unlisted; a replica that has one lists it alone and it leaves the
// set, but only while the marker stands: a rebuild of some rails alone
// after a loss (no marker) marks nothing, the loss needing a whole one,
// which replaces the set.
func TestUnlistedRailsStayUntilListed(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	gen, _ := s.BeginRebuild(ctx, "r-1", time.Minute)
	if ok, err := s.MarkRailsReadyAfter(ctx, gen, true, nil, []string{"smartfastpay", "wepayout"}); err != nil || !ok {
		t.Fatalf("whole rebuild: %v %v", ok, err)
	}
	if got, _ := s.UnlistedRails(ctx); len(got) != 2 {
		t.Fatalf("unlisted after a rebuild without the rails: %v", got)
	}
	gen, _ = s.BeginRebuild(ctx, "r-2", time.Minute)
	if ok, err := s.MarkRailsReadyAfter(ctx, gen, false, []string{"wepayout"}, nil); err != nil || !ok {
		t.Fatalf("rebuild of one rail: %v %v", ok, err)
	}
	if got, _ := s.UnlistedRails(ctx); !slices.Equal(got, []string{"smartfastpay"}) {
		t.Fatalf("unlisted after wepayout was listed: %v", got)
	}
	if err := rs.Client().Del(ctx, s.readyKey(), s.unlistedKey()).Err(); err != nil { // lost with Redis's data
		t.Fatal(err)
	}
	gen, _ = s.BeginRebuild(ctx, "r-3", time.Minute)
	if ok, err := s.MarkRailsReadyAfter(ctx, gen, false, []string{"smartfastpay"}, nil); err != nil || ok {
		t.Fatalf("a rebuild of one rail marked a lost schedule ready: %v %v", ok, err)
	}
	if ok, _ := s.Ready(ctx); ok {
		t.Fatal("schedule reported ready")
	}
	gen, _ = s.BeginRebuild(ctx, "r-4", time.Minute)
	if ok, err := s.MarkRailsReadyAfter(ctx, gen, true, []string{"smartfastpay", "wepayout"}, nil); err != nil || !ok {
		t.Fatalf("whole rebuild with every rail: %v %v", ok, err)
	}
	if got, _ := s.UnlistedRails(ctx); len(got) != 0 {
		t.Fatalf("unlisted after a rebuild with every rail: %v", got)
	}
}
