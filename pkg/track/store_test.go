package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The Lua CAS follows payout.CanTransition / CanBatchTransition for every
// pair of statuses, on a real Redis.
func TestStatusCASFollowsDomainOrder(t *testing.T) {
	rs := testenv.Redis(t)
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ctx := context.Background()
	ep := mustEpoch(t, s)
	try := func(k kind, id, from, to string, final bool) outcome {
		t.Helper()
		key := s.key(k, id)
		rs.Client().Del(ctx, key)
		if from != "" {
			rs.Client().Set(ctx, key, formatStatusValue(statusValue{st: from, tx: "tx-1"}), 0)
		}
		out, _, err := s.begin(ctx, transition{kind: k, id: id, to: to, ref: "tx-1", final: final, verified: true, since: ep}, "tok")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, from := range append([]payout.Status{""}, payout.Statuses...) {
		for _, to := range payout.Statuses {
			out := try(kindRequest, "r", string(from), string(to), to.Final())
			want := payout.CanTransition(from, to)
			if from == "" && to == payout.StatusReturned {
				want = false // RETURNED needs its APPROVED known (emitRequest emits it first)
			}
			if (out == outcomeOK) != want {
				t.Errorf("request %q -> %q: %s, CanTransition says %v", from, to, out, payout.CanTransition(from, to))
			}
		}
	}
	for _, from := range append([]payout.BatchStatus{""}, payout.BatchStatuses...) {
		for _, to := range payout.BatchStatuses {
			out := try(kindBatch, "b", string(from), string(to), to.Final())
			if (out == outcomeOK) != payout.CanBatchTransition(from, to) {
				t.Errorf("batch %q -> %q: %s, CanBatchTransition says %v", from, to, out, payout.CanBatchTransition(from, to))
			}
		}
	}
}

func TestStatusCASLeaseAbandonAndUnknown(t *testing.T) {
	rs := testenv.Redis(t)
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ctx := context.Background()
	ep := mustEpoch(t, s)
	tr := func(to payout.Status, ref string, verified bool) transition {
		return transition{kind: kindRequest, id: "req-1", to: string(to), ref: ref, final: to.Final(), verified: verified, since: ep}
	}
	expect := func(t2 transition, tok string, want outcome, wantCur string) {
		t.Helper()
		out, cur, err := s.begin(ctx, t2, tok)
		if err != nil || out != want || cur != wantCur {
			t.Fatalf("begin %s: %s %q %v, want %s %q", t2.to, out, cur, err, want, wantCur)
		}
	}
	// Fresh key, non-final status, not read from Wompi: ask Wompi first.
	expect(tr(payout.StatusPending, "tx-1", false), "a", outcomeUnknown, "")
	// A final status needs no check.
	expect(tr(payout.StatusApproved, "tx-1", false), "a", outcomeOK, "")
	// While attempt a holds the lease, others wait.
	expect(tr(payout.StatusPending, "tx-1", true), "b", outcomeBusy, "")
	// a's produce fails: nothing is recorded as emitted...
	if err := s.end(ctx, tr(payout.StatusApproved, "tx-1", false), "a", false); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.last(ctx, kindRequest, "req-1"); st != "" {
		t.Fatalf("abandoned attempt recorded as emitted: %q", st)
	}
	// ...but a status older than the attempted one is refused, and the
	// attempted one may be emitted again.
	expect(tr(payout.StatusPending, "tx-1", true), "b", outcomeStale, "APPROVED")
	expect(tr(payout.StatusApproved, "tx-1", false), "c", outcomeOK, "")
	// A stale token cannot confirm.
	if err := s.end(ctx, tr(payout.StatusApproved, "tx-1", false), "a", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.last(ctx, kindRequest, "req-1"); st != "" {
		t.Fatalf("a stale attempt confirmed: %q", st)
	}
	if err := s.end(ctx, tr(payout.StatusApproved, "tx-1", false), "c", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.last(ctx, kindRequest, "req-1"); st != "APPROVED" {
		t.Fatalf("confirmed status: %q", st)
	}
	expect(tr(payout.StatusApproved, "tx-1", false), "d", outcomeStale, "APPROVED")
	// A CANCELLED transaction sent again under a new transaction id starts
	// a new life; the old transaction's late events stay refused.
	rs.Client().Set(ctx, s.key(kindRequest, "req-2"), formatStatusValue(statusValue{st: "CANCELLED", tx: "tx-old"}), 0)
	expect(transition{kind: kindRequest, id: "req-2", to: "PENDING", ref: "tx-old", verified: true, since: ep}, "e", outcomeStale, "CANCELLED")
	expect(transition{kind: kindRequest, id: "req-2", to: "PENDING", ref: "tx-new", verified: true, since: ep}, "e", outcomeOK, "")
	// A transition without a transaction never starts a new life (chaos
	// seed 2 found it): the dispatcher posted a payee, lost the answer and
	// deferred it RAIL_UNAVAILABLE, while the provider's webhook had FAILED
	// it. The DEFERRED (no transaction id) must not follow the FAILED, nor
	// a SUBMITTED the provider did not list; confirmed or still in flight.
	for _, inFlight := range []bool{false, true} {
		v := statusValue{st: "FAILED", tx: "tx-x"}
		if inFlight {
			v = statusValue{st: "PENDING", tx: "tx-x", fl: "FAILED", flp: "PENDING", flt: "old", fle: "0", flx: "tx-x"}
		}
		rs.Client().Set(ctx, s.key(kindRequest, "req-3"), formatStatusValue(v), 0)
		for _, to := range []payout.Status{payout.StatusDeferred, payout.StatusSubmitted} {
			out, _, err := s.begin(ctx, transition{kind: kindRequest, id: "req-3", to: string(to), verified: true, since: ep}, "f")
			if err != nil || out != outcomeStale {
				t.Errorf("%s without a transaction after FAILED (in flight %v): %s %v, want stale", to, inFlight, out, err)
			}
		}
	}
}

// beginMany and endMany give each key the answer begin and end give it
// alone, in one round trip, and survive a Redis that forgot the scripts.
func TestStatusCASPipelined(t *testing.T) {
	rs := testenv.Redis(t)
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ctx := context.Background()
	if err := rs.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rs.Client().Set(ctx, s.key(kindRequest, "p-done"), formatStatusValue(statusValue{st: "APPROVED", tx: "tx-d"}), 0)
	rs.Client().HSet(ctx, s.key(kindRequest, "p-pend"), "st", "PENDING", "tx", "tx-p") // a hash, as an earlier version wrote it
	ep := mustEpoch(t, s)
	trs := []transition{
		{kind: kindRequest, id: "p-new", to: "PENDING", ref: "tx-n", verified: true, since: ep},                 // fresh: ours
		{kind: kindRequest, id: "p-done", to: "PENDING", ref: "tx-d", verified: true, since: ep},                // regression
		{kind: kindRequest, id: "p-pend", to: "PENDING", ref: "tx-p", verified: true, since: ep},                // duplicate
		{kind: kindRequest, id: "p-pend2", to: "APPROVED", ref: "tx-q", final: true, verified: true, since: ep}, // ours
	}
	outs, froms, err := s.beginMany(ctx, trs, []string{"t1", "t2", "t3", "t4"})
	if err != nil {
		t.Fatal(err)
	}
	want := []outcome{outcomeOK, outcomeStale, outcomeStale, outcomeOK}
	wantFrom := []string{"", "APPROVED", "PENDING", ""}
	for i := range trs {
		if outs[i] != want[i] || froms[i] != wantFrom[i] {
			t.Errorf("%s: %s %q, want %s %q", trs[i].id, outs[i], froms[i], want[i], wantFrom[i])
		}
	}
	// While the attempts hold their leases, a single begin waits.
	if out, _, _ := s.begin(ctx, transition{kind: kindRequest, id: "p-new", to: "APPROVED", ref: "tx-n", final: true, verified: true, since: ep}, "x"); out != outcomeBusy {
		t.Fatalf("begin during a pipelined attempt: %s", out)
	}
	// Confirm the first, abandon the last.
	if err := rs.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.endMany(ctx, []transition{trs[0], trs[3]}, []string{"t1", "t4"}, []bool{true, false}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.last(ctx, kindRequest, "p-new"); st != "PENDING" {
		t.Fatalf("confirmed: %q", st)
	}
	if st, _ := s.last(ctx, kindRequest, "p-pend2"); st != "" {
		t.Fatalf("abandoned attempt recorded as emitted: %q", st)
	}
}
