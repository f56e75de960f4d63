package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Two faults together on one Redis behind Sentinel: a poll reads PENDING
// from the provider; before it emits, the master A is cut off from its
// replica B, which is promoted, and A still takes the webhook's APPROVED
// (produced, confirmed). The partition heals: A syncs from B (the APPROVED
// is discarded) and is made master again. Nothing was flushed, so the epoch
// marker written before the partition is still there, unchanged. The poll's
// PENDING then finds its key as B had it: holding SUBMITTED (an older
// status), or nothing (a request B never saw). Emitted, PENDING follows
// APPROVED on the status topic under an eventId never emitted before, so
// consumers' dedupe does not catch it.
func TestStatusReadBeforeAFailbackIsNotEmitted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known bool // the key holds SUBMITTED before the partition
	}{{"key holds an older status", true}, {"key absent on the replica", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := testenv.RedisOwn(t), testenv.RedisOwn(t)
			s := newStatusStore(a.Client(), a.Prefix(), time.Hour, 10*time.Second)
			ctx := context.Background()
			if tc.known {
				submitted := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusSubmitted), ref: "tx-1", verified: true,
					since: mustEpoch(t, s)}
				if out, _, err := s.begin(ctx, submitted, "gate"); err != nil || out != outcomeOK {
					t.Fatalf("SUBMITTED: %s %v", out, err)
				}
				if err := s.end(ctx, submitted, "gate", true); err != nil {
					t.Fatal(err)
				}
			}
			since := mustEpoch(t, s) // the poll, before it reads the provider
			b.ReplicaOf(t, a)
			b.Promote(t) // A is cut off
			approved := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusApproved), ref: "tx-1", final: true}
			if out, _, err := s.begin(ctx, approved, "hook"); err != nil || out != outcomeOK {
				t.Fatalf("webhook's APPROVED on A cut off: %s %v", out, err)
			}
			if err := s.end(ctx, approved, "hook", true); err != nil {
				t.Fatal(err)
			}
			// The partition heals: A syncs from B, then is made master again.
			a.ReplicaOf(t, b)
			a.Promote(t)
			if st, err := s.last(ctx, kindRequest, "r-1"); err != nil || st == string(payout.StatusApproved) {
				t.Fatalf("status after the failback %q (%v): the APPROVED survived, the test lost its premise", st, err)
			}
			if cur, err := s.currentEpoch(ctx); err != nil || cur != marker(since) {
				t.Fatalf("marker %q, was %q (%v): the failback must keep it", cur, since, err)
			}

			if !tc.known {
				// The dispatcher's gate checks a SUBMITTED it observed
				// before the failback the same way.
				g := NewGate(a.Client(), a.Prefix(), time.Minute)
				tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-1", To: string(payout.StatusSubmitted), Ref: "tx-1"}})
				if err != nil || tk.Verdicts[0] != GateSkip {
					t.Fatalf("SUBMITTED observed before the failback: %+v %v, want skipped", tk, err)
				}
			}
			stale := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusPending), ref: "tx-1", verified: true, since: since}
			if out, from, err := s.begin(ctx, stale, "poll"); err != nil || out != outcomeReread {
				t.Fatalf("the poll's PENDING read before the failback: %s (from %q) %v, want %s: PENDING after APPROVED",
					out, from, err, outcomeReread)
			}
			// Read again after the failback (a new since), it is emitted.
			fresh := mustEpoch(t, s)
			stale.since = fresh
			if out, _, err := s.begin(ctx, stale, "poll-2"); err != nil || out != outcomeOK {
				t.Fatalf("PENDING read after the failback: %s %v, want ok", out, err)
			}
		})
	}
}

// TestPollReadBeforeRedisLossDoesNotRegress with a failback instead of a
// flush: the poll lists the transactions (PENDING); Wompi settles one; A is
// cut off, B promoted, and the webhook's APPROVED is emitted through A;
// A syncs from B and is made master again, with the epoch marker intact.
// The poll must not emit its PENDING after that APPROVED.
func TestPollReadBeforeAFailbackDoesNotRegress(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, sim: wompitest.Config{SettleDelay: time.Second}})
	b := testenv.RedisOwn(t)
	pollReadBeforeALoss(t, f, "the failback", func(emitApproved func()) {
		b.ReplicaOf(t, f.redis)
		b.Promote(t) // A is cut off
		emitApproved()
		f.redis.ReplicaOf(t, b) // the partition heals: A syncs from B
		f.redis.Promote(t)
	})
}
