package dispatch

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Redis Cluster, one master's partial loss: the master serving {budget}
// (slot 11677) fails over to a replica that missed its last writes (here:
// restarts and gets back its slot as it was before the day's second
// batch), while the master serving {dispatch} (slot 5248: the epoch,
// stamped with that master's run id) keeps everything. The day's budget
// survives, still seeded, but without the second batch's reservation. No
// epoch changed, so no recovery books again what Wompi lists for the day
// (TestPartialLossRaisesWompiBudgetToItsListing covers the same loss on one
// Redis, where the epoch notices it): the third batch was paid past the
// account's daily limit.
func TestBudgetMasterFailoverAloneKeepsTheDailyLimit(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl, err := config.RedisClient(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cl.(*redis.ClusterClient); !ok {
		t.Fatalf("built a %T, want a cluster client", cl)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ctx := context.Background()
	f := newFixture(t, fixtureOpt{noEpoch: true, partitions: 1})
	cfg := func(c *Config) { c.Redis, c.Prefix, c.DailyLimitCents = cl, rc.Prefix(), 1_000_000 }
	e := f.engine(cfg)
	key := rc.Prefix() + "{budget}:" + payout.DayIn(f.clock.Now(), bogota).String()
	if s1, s2 := cl.ClusterKeySlot(ctx, key).Val(), cl.ClusterKeySlot(ctx, e.st.epochKey()).Val(); s1/5462 == s2/5462 {
		t.Fatalf("{budget} (slot %d) and {dispatch} (slot %d) on one master: the test needs them apart", s1, s2)
	}
	var snap map[string]string
	thirdBatchAfterABudgetLoss(t, f, e, cfg, "cbudget",
		func() {
			if snap, err = rc.SnapshotSlotOf(ctx, key); err != nil {
				t.Fatal(err)
			}
			if _, ok := snap[key]; !ok {
				t.Fatalf("no budget key %s in the snapshot %v", key, snap)
			}
		},
		func() {
			epochBefore := cl.HGet(ctx, e.st.epochKey(), "id").Val()
			if err := rc.RestartMasterOf(ctx, key, snap); err != nil {
				t.Fatal(err)
			}
			if got := cl.HGet(ctx, e.st.epochKey(), "id").Val(); got != epochBefore || got == "" {
				t.Fatalf("the epoch changed (%q, was %q): the restart touched {dispatch}'s master", got, epochBefore)
			}
		})
}

// The same partial loss of the {budget} master alone on a single-payout
// rail (SmartFastPay, which publishes no figure of what was paid): the
// day's budget still reads as seeded and listed, without the first batch's
// reservation, and the second batch was paid past the account's limit.
func TestSingleRailBudgetMasterFailoverAloneKeepsTheDailyLimit(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl, err := config.RedisClient(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ctx := context.Background()
	f := newFixture(t, fixtureOpt{noEpoch: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[0](t)
	today := tenOClock(f, r)
	const limit = 250_000
	cfg := func(c *Config) { c.Redis, c.Prefix, c.DailyLimitCents = cl, rc.Prefix(), limit }
	e := r.engine(f, cfg)
	key := e.budget.Key(today.String())
	warm := singleBatch(r, "cslot-warm", 1) // 100,000 cents: seeds and lists the day
	b := warm
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("warm-up batch: %v", err)
	}
	snap, err := rc.SnapshotSlotOf(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	first := singleBatch(r, "cslot-before", 1) // 100,000 cents
	b = first
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if paid := paidOf(r, warm, first); paid != 200_000 {
		t.Fatalf("paid %d, want 200000", paid)
	}
	if err := rc.RestartMasterOf(ctx, key, snap); err != nil {
		t.Fatal(err)
	}
	e2 := r.engine(f, cfg)
	second := singleBatch(r, "cslot-after", 1) // 100,000 cents more: 300,000 > 250,000
	for attempt := 0; ; attempt++ {
		b = second
		err := e2.process(ctx, &b, nil, testLogger())
		if err == nil {
			break
		}
		if attempt == 3 || !errors.Is(err, errStale) {
			t.Fatalf("second batch: %v", err)
		}
	}
	if paid := paidOf(r, warm, first, second); paid > limit {
		t.Fatalf("paid %d on %s, above the account's daily limit %d: the {budget} master lost the first batch's reservation, no recovery ran",
			paid, today, limit)
	}
}
