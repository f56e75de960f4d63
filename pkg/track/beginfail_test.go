package track

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A Begin that fails after its keys were granted (here the read of the
// epoch marker, after the SET NX of the new keys) produces nothing, and
// releases what it was granted. Left to their leases, those attempts read
// as perhaps emitted: the dispatcher's retry of the batch was answered busy,
// then, past the lease, its SUBMITTED (via PENDING) was refused for good
// although no event had been written.
func TestFailedBeginReleasesItsAttempts(t *testing.T) {
	rs := testenv.RedisOwn(t)
	var on atomic.Bool
	cl := hookedClient(t, rs.Client(), failScript{on: &on})
	g := NewGate(cl, rs.Prefix(), time.Minute)
	ctx := context.Background()
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.s.epochCache.Store(nil) // a new process: the marker is read again
	items := []GateItem{{ID: "begin-fails-1", To: string(payout.StatusPending), Via: string(payout.StatusSubmitted), Ref: "tx-1"}}
	on.Store(true)
	if _, err := g.Begin(ctx, since, items); err == nil {
		t.Fatal("Begin succeeded with the epoch marker unreadable")
	}
	on.Store(false)
	tk, err := g.Begin(ctx, since, items)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Verdicts[0] != GateOurs {
		t.Fatalf("the retry's verdict %v, want ours: the failed Begin's attempt is still held, with nothing emitted", tk.Verdicts[0])
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
}
