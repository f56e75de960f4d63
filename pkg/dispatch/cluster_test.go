package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// The dispatcher on a three-master Redis Cluster, through REDIS_URL's
// cluster form: every script keeps its keys in one slot (a two-slot script
// fails there with CROSSSLOT). A recovery from an empty cluster, a paid
// batch, a duplicate in another batch and under another account, a
// validation refusal, the budgets (a scheduled batch's reservation spans
// two days: today's batch slot, tomorrow's amount), the rate limit and the
// hand-off all run.
func TestDispatcherOnRedisCluster(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl, err := config.RedisClient(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cl.(*redis.ClusterClient); !ok {
		t.Fatalf("REDIS_URL %s built a %T, want a cluster client", rc.URL(), cl)
	}
	t.Cleanup(func() { _ = cl.Close() })
	f := newFixture(t, fixtureOpt{noEpoch: true})
	f.tap.fault = func(n int) fault {
		if n == 3 {
			return fault400
		}
		return faultNone
	}
	e := f.engine(func(c *Config) { c.Redis, c.Prefix = cl, rc.Prefix() })
	a := batch("cl-a", map[string]int64{"cl-1": 100_000, "cl-2": 200_000}, "cl-1", "cl-2")
	b := batch("cl-b", map[string]int64{"cl-2": 200_000, "cl-3": 300_000}, "cl-2", "cl-3")
	c := batch("cl-c", map[string]int64{"cl-1": 100_000, "cl-4": 100_000}, "cl-1", "cl-4")
	c.OriginAccountID = wompitest.AccountSecondary
	d := batch("cl-d", map[string]int64{"cl-5": 100_000}, "cl-5")
	at := payout.DayIn(testStart, bogota).Next().StartIn(bogota).Add(9 * time.Hour)
	d.Schedule.DispersionDatetime = &at
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
	f.produce(f.topics.Batches, b)
	eventually(t, "batch b submitted", func() bool { return outcome(e, "submitted") == 2 })
	f.produce(f.topics.Batches, c) // its POST is refused (fault400)
	eventually(t, "batch c handled", func() bool { return outcome(e, "rejected") == 1 })
	f.produce(f.topics.Batches, d)
	eventually(t, "scheduled batch d submitted", func() bool { return outcome(e, "submitted") == 3 })
	_ = stop()
	f.noDoublePayment()
	for _, rid := range []string{"cl-1", "cl-2", "cl-3", "cl-5"} {
		if le, _ := f.sim.LedgerEntry(rid); le.Accepted != 1 {
			t.Fatalf("%s accepted %d times, want 1", rid, le.Accepted)
		}
	}
	if dlq := f.duplicateCopies(); dlq["cl-2"] != b.BatchID || dlq["cl-1"] != c.BatchID {
		t.Fatalf("DLQ copies %v", dlq)
	}
	f.checkLifecycles()
	if rs := byStatus(f.statuses())["cl-4"][payout.StatusRejected]; len(rs) != 1 {
		t.Fatalf("cl-4: REJECTED %+v, want one", rs)
	}
	if n, _ := cl.Exists(context.Background(), e.st.reqKey("cl-4")).Result(); n != 1 {
		t.Fatal("a rejected requestId left the index")
	}
}
