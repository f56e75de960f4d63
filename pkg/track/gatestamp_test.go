package track

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two things together on one Redis, neither a loss: a payee waited
// (DEFERRED, emitted through the gate), and the master's first replica
// attaches (its replication id changes; every key is kept, nothing was
// emitted anywhere else). The dispatcher's next job for the payee takes
// Epoch (before the attach, or after it from the gate's cached stamp),
// posts, and asks the gate for SUBMITTED over DEFERRED. A skip there is
// final (dispatch counts it late_statuses_skipped and never emits it): the
// request's SUBMITTED, with its payout and transaction ids, is lost while
// nothing was lost in Redis. Likewise a job that begins after a restart
// that kept every key, its Epoch taken from a stamp cached before it.
func TestGateSubmittedSurvivesAFirstReplicaAttaching(t *testing.T) {
	for _, tc := range []struct {
		name        string
		epochBefore bool // the job took Epoch before the replica attached
		restart     bool // instead, a restart that kept every key, before the job began
	}{{"job began before the attach", true, false}, {"job began after the attach", false, false},
		{"job began after a restart that kept every key", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := testenv.RedisOwn(t), testenv.RedisOwn(t)
			ctx := context.Background()
			g := NewGate(a.Client(), a.Prefix(), time.Minute)
			since := emitDeferred(t, g)
			var err error
			if tc.epochBefore {
				if since, err = g.Epoch(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tc.restart {
				// A new run id, every key kept: only a since cached from
				// before the restart names the old process.
				keys, err := a.Client().Keys(ctx, a.Prefix()+"*").Result()
				if err != nil {
					t.Fatal(err)
				}
				if err := a.RestartKeeping(ctx, keys...); err != nil {
					t.Fatal(err)
				}
			} else {
				b.ReplicaOf(t, a) // a's first replica: a new replication id, nothing lost
			}
			if !tc.epochBefore {
				if since, err = g.Epoch(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if v := gateEmit(t, g, since, string(payout.StatusSubmitted)); v != GateOurs {
				t.Fatalf("SUBMITTED over DEFERRED (nothing lost): verdict %d, want ours: the SUBMITTED is never emitted", v)
			}
		})
	}
}

// Two things together on one Redis, neither a loss: a failover made the
// replica the master (its replication id set by the promotion), and the
// new master then goes repl-backlog-ttl without a replica (the old master
// never comes back), so Redis frees its backlog, takes a new replication
// id and clears the second one: nothing is lost, and the dispatcher's own
// check (dispatch's sameServer, ratelimit's) takes it for benign. A job
// that took Epoch before that, and asks the gate for SUBMITTED over the
// DEFERRED it emitted, is skipped for good: the SUBMITTED is never emitted.
func TestGateSubmittedSurvivesAPromotedMastersBacklogFreed(t *testing.T) {
	a, b := testenv.RedisOwn(t), testenv.RedisOwn(t)
	ctx := context.Background()
	b.ReplicaOf(t, a)
	b.Promote(t) // the failover: b's replication id set by the promotion
	g := NewGate(b.Client(), b.Prefix(), time.Minute)
	emitDeferred(t, g)
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// b has had no replica since its promotion: with a one-second
	// repl-backlog-ttl its next replication cron frees the backlog.
	if err := b.Client().ConfigSet(ctx, "repl-backlog-ttl", "1").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := b.Client().Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "second_repl_offset:-1") && strings.Contains(info, "repl_backlog_active:0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's backlog was not freed: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := gateEmit(t, g, since, string(payout.StatusSubmitted)); v != GateOurs {
		t.Fatalf("SUBMITTED over DEFERRED (nothing lost): verdict %d, want ours: the SUBMITTED is never emitted", v)
	}
}

// sameProcess judges a replication id the way the dispatcher's own check
// does (dispatch's sameServer): another one is a loss only when a
// promotion set it (the stamp names it).
func TestSameProcess(t *testing.T) {
	for _, tc := range []struct {
		name, known, cur string
		same             bool
	}{
		{"unchanged", "run1:", "run1:", true},
		{"backlog freed after a promotion (named, then none)", "run1:aaa", "run1:", true},
		{"failback (a promotion since)", "run1:", "run1:bbb", false},
		{"a second promotion", "run1:aaa", "run1:bbb", false},
		{"failover or restart", "run1:aaa", "run2:aaa", false},
		{"failover or restart, no id named", "run1:", "run2:", false},
		{"INFO refused", ":", ":", true},
		{"Cluster master flushed", "run1::0.0", "run1::1.0", false},
		{"Cluster master's backlog freed", "run1:aaa:0.0", "run1::0.0", true},
		{"Cluster master's backlog freed and flushed", "run1:aaa:0.0", "run1::0.1", false},
		{"Cluster master failed back", "run1::0.0", "run1:bbb:0.0", false},
		{"Cluster master, canaries unchanged", "run1::t1+t2+t3", "run1::t1+t2+t3", true},
		{"Cluster master, one canary's slot moved away", "run1::t1+t2+t3", "run1::t2+t3", true},
		{"Cluster master, one canary's slot moved, then written anew", "run1::t1+t2+t3", "run1::t2+t3+t4", true},
		{"Cluster master flushed (every canary new)", "run1::t1+t2+t3", "run1::t4+t5+t6", false},
		{"Cluster master flushed after a canary moved", "run1::t1+t2+t3", "run1::t5+t6", false},
		{"Cluster master, no canary of its process then and now", "run1::-", "run1::-", false},
		{"Cluster master, no canary now", "run1::t1+t2+t3", "run1::-", false},
		{"Cluster master, a canary known, none read now", "run1::t1", "run1::", false},
		{"Cluster master restarted, same canary tokens", "run1::t1+t2+t3", "run2::t1+t2+t3", false},
		{"Cluster master, canaries with slots unchanged", "run1::t1/1+t2/5+t3/9", "run1::t1/1+t2/5+t3/9", true},
		{"Cluster master, a canary's slot moved away", "run1::t1/1+t2/5+t3/9", "run1::t2/5+t3/9", true},
		{"Cluster master, a canary's slot moved, one new in another slot", "run1::t1/1+t2/5+t3/9", "run1::t2/5+t3/9+t4/2", true},
		{"Cluster master flushed after a canary's slot moved away, the slot back", "run1::t1/1+t2/5+t3/9", "run1::t1/1+t5/5+t6/9", false},
		{"Cluster master flushed, a canary rewritten in its slot", "run1::t1/1+t2/5+t3/9", "run1::t1/1+t2/5+t4/9", false},
		{"Cluster master, every canary slot known moved away", "run1::t1/1+t2/5", "run1::t4/2+t5/6", false},
		{"Cluster master, a since without slots", "run1::t1+t2+t3", "run1::t1/1+t5/5+t6/9", true},
		{"Cluster master, a since without slots, flushed", "run1::t1+t2+t3", "run1::t4/1+t5/5+t6/9", false},
		{"Cluster master, no canary then, slots now", "run1::-", "run1::t1/1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameProcess(tc.known, tc.cur); got != tc.same {
				t.Fatalf("sameProcess(%q, %q) = %v, want %v", tc.known, tc.cur, got, tc.same)
			}
		})
	}
}

// gateEmit is a dispatcher's job emitting request r-1's status to
// (transaction tx-1) through g under since: it begins, and ends the
// attempt written when the gate answers ours.
func gateEmit(t *testing.T, g *Gate, since, to string) GateVerdict {
	t.Helper()
	ctx := context.Background()
	tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-1", To: to, Ref: "tx-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Verdicts[0] == GateOurs {
		if err := g.End(ctx, tk, true); err != nil {
			t.Fatal(err)
		}
	}
	return tk.Verdicts[0]
}

// emitDeferred has r-1 wait (its DEFERRED emitted through g under a fresh
// Epoch, which it returns) and fails unless the gate granted it.
func emitDeferred(t *testing.T, g *Gate) string {
	t.Helper()
	since, err := g.Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v := gateEmit(t, g, since, string(payout.StatusDeferred)); v != GateOurs {
		t.Fatalf("DEFERRED: verdict %d, want ours", v)
	}
	return since
}
