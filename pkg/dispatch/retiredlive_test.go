package dispatch

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A rail retired on some replicas while another still pays through it (a
// rolling change of DISPATCHER_RETIRED_RAILS and of the rail's credentials,
// or a replica left with both): after a Redis loss, a replica that names
// the rail retired runs the recovery without listing it. The epoch it made
// must not prove a payee of that rail new, for the replica that still pays
// through it posts such payees without a lookup (newPayeeProof): a copy of
// a request it paid before the loss was paid again on the same rail. (The
// retirement accepts a copy paid again on another rail, never on the
// rail itself, which a live dispatcher still pays through.)
func TestRetiredRailStillPaidByAPeerIsLookedUpAfterARedisLoss(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	amounts := map[string]int64{"rt-1": 100_000, "w-1": 100_000}

	// The replica with the rail's credentials pays rt-1 on it.
	paying := r.engine(f, nil)
	f.produce(f.topics.Batches, onRail(r, batch("rt-a", amounts, "rt-1")))
	stop, _ := f.run(paying)
	eventually(t, "batch rt-a submitted", func() bool { return outcome(paying, "submitted") == 1 })
	_ = stop()
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A replica that names the rail retired recovers alone.
	retired := f.engine(func(c *Config) { c.RetiredRails = []rail.Name{r.name} })
	f.produce(f.topics.Batches, batch("rt-w", amounts, "w-1"))
	stopR, _ := f.run(retired)
	eventually(t, "batch rt-w submitted", func() bool { return outcome(retired, "submitted") == 1 })
	_ = stopR()
	if n := testutil.ToFloat64(retired.m.recoveries); n != 1 {
		t.Fatalf("recoveries %v, want 1 (the retired replica's)", n)
	}
	if c, _ := f.redis.Client().HGet(context.Background(), retired.st.epochKey(), "complete").Result(); c != "" {
		t.Errorf("the epoch of a recovery that did not list %s, which a live dispatcher pays through, is complete (%q)", r.name, c)
	}

	// A replica that still pays through the rail gets a copy of rt-1.
	again := r.engine(f, nil)
	f.produce(f.topics.Batches, onRail(r, batch("rt-c", amounts, "rt-1")))
	stopA, _ := f.run(again)
	eventually(t, "the copy handled", func() bool {
		return r.sim.Accepted("rt-1") > 1 || outcome(again, "submitted") == 1 || outcome(again, "dlq") == 1 || outcome(again, "duplicate") == 1
	})
	_ = stopA()
	if n := r.sim.Accepted("rt-1"); n != 1 {
		t.Fatalf("rt-1 paid %d times on %s, want 1: the recovery that did not list the rail proved its copy new", n, r.name)
	}
}
