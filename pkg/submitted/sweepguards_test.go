package submitted

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// MarkFinal of a payout whose hand-off Redis lost writes nothing: a hash
// written back then would hold "final" alone and never expire.
func TestMarkFinalDoesNotBringBackALostHandOff(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	if err := s.MarkFinal(ctx, "p-lost"); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().Exists(ctx, s.payoutKey("p-lost")).Val(); n != 0 {
		t.Fatalf("MarkFinal of a lost hand-off wrote %v (TTL %v)", rs.Client().HGetAll(ctx, s.payoutKey("p-lost")).Val(),
			rs.Client().TTL(ctx, s.payoutKey("p-lost")).Val())
	}
	// A hand-off that still exists is marked, and keeps its TTL.
	if err := s.Record(ctx, Payout{PayoutID: "p-kept", BatchID: "b-1", OriginAccountID: "acc"},
		[]Transaction{{TransactionID: "tx-1", RequestID: "req-1", AmountInCents: 5}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFinal(ctx, "p-kept"); err != nil {
		t.Fatal(err)
	}
	if v := rs.Client().HGet(ctx, s.payoutKey("p-kept"), "final").Val(); v != "1" {
		t.Fatalf("final = %q, want 1", v)
	}
	if ttl := rs.Client().TTL(ctx, s.payoutKey("p-kept")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("marked hand-off TTL %v", ttl)
	}
}

// Unscheduled names the recorded payouts a partial loss dropped from the
// schedule, and only those: not one still scheduled, not one marked final
// (MarkFinal then Done), and not a hash that is no hand-off (the poll
// digest written after Redis lost the payout's hash).
func TestUnscheduledNamesOnlyRecordedOpenPayouts(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := New(rs.Client(), rs.Prefix(), time.Hour)
	now := time.UnixMilli(1_800_000_000_000)
	for _, id := range []string{"p-dropped", "p-scheduled", "p-ended"} {
		if err := s.Record(ctx, Payout{PayoutID: id, BatchID: "b-" + id, OriginAccountID: "acc"},
			[]Transaction{{TransactionID: "tx-" + id, RequestID: "req-" + id, AmountInCents: 5}}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Done(ctx, "p-dropped"); err != nil { // the partial loss
		t.Fatal(err)
	}
	if err := s.MarkFinal(ctx, "p-ended"); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx, "p-ended"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPollDigest(ctx, "p-digest-only", "d1"); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Unscheduled(ctx, func(ids []string) error { got = append(got, ids...); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"p-dropped"}) {
		t.Fatalf("Unscheduled = %v, want [p-dropped]", got)
	}
}
