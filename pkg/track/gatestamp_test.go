package track

import (
	"context"
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
			emit := func(since, to string) GateVerdict {
				t.Helper()
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
			since, err := g.Epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v := emit(since, string(payout.StatusDeferred)); v != GateOurs {
				t.Fatalf("DEFERRED: verdict %d, want ours", v)
			}
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
			if v := emit(since, string(payout.StatusSubmitted)); v != GateOurs {
				t.Fatalf("SUBMITTED over DEFERRED (nothing lost): verdict %d, want ours: the SUBMITTED is never emitted", v)
			}
		})
	}
}
