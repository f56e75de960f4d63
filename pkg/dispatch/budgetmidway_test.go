package dispatch

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two faults lined up: a SmartFastPay batch of two payees (200,000 cents)
// reserved its whole amount and has posted its first payee, when only the
// budgets' keys are lost, the epoch surviving: on a Redis Cluster, the
// {budget} slot's master restarts empty (or fails over to a replica that
// missed the writes) while {dispatch}'s keeps the epoch and the batch's
// lease; on an evicting Redis, the day's budget is evicted. Just then
// another batch of the same account reserves: its first seed lists the
// rail's day (listDay), which shows the one payee posted, and is granted
// 100,000 more. The first batch went on posting its second payee, whose
// reservation went with the budget and which nothing counted: the account
// was paid 300,000 on a day limited to 250,000. The loss is not at the
// "very moment" of a POST in flight (the documented limit): the second
// payee's POST starts after the loss and after the listing. Each POST now
// checks the batch still holds its reservation there (budgetApart,
// mayEvict), and reserves the payees left again when it does not.
// (From a review.)
func TestSingleBatchMidwayBudgetLossDoesNotOverspend(t *testing.T) {
	eachBudgetLossAlone(t, midwayBudgetLoss)
}

// eachBudgetLossAlone runs run on the two Redis set-ups whose daily budgets
// can be lost while the dispatcher's epoch is not, as a subtest each: a
// Redis Cluster (the budgets' slot on another master than the epoch's, the
// epoch written with the {dispatch} master's run id) and an evicting
// Redis. Its on returns the Redis to dispatch on and its prefix (nil: the
// fixture's own, already holding an epoch).
func eachBudgetLossAlone(t *testing.T, run func(*testing.T, func(*fixture) (redis.UniversalClient, string))) {
	t.Run("Redis Cluster", func(t *testing.T) {
		rc := testenv.RedisCluster(t)
		cl, err := config.RedisClient(rc.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		cc, ok := cl.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("REDIS_URL %s built a %T, want a cluster client", rc.URL(), cl)
		}
		run(t, func(f *fixture) (redis.UniversalClient, string) {
			ctx := context.Background()
			key := rc.Prefix() + "{dispatch}:epoch"
			master, err := cc.MasterForKey(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.HSet(ctx, key, "id", "e0", "state", "ready", "layout", epochLayout, "complete", "e0",
				"server", redisRunID(t, master)).Err(); err != nil {
				t.Fatal(err)
			}
			return cl, rc.Prefix()
		})
	})
	t.Run("evicting Redis", func(t *testing.T) {
		run(t, func(f *fixture) (redis.UniversalClient, string) {
			rdb := f.redis.Client()
			configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-lru")
			t.Cleanup(func() {
				configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
			})
			return nil, ""
		})
	})
}

// midwayBudgetLoss runs TestSingleBatchMidwayBudgetLossDoesNotOverspend on
// the Redis that on returns (nil: the fixture's own, already holding an
// epoch).
func midwayBudgetLoss(t *testing.T, on func(*fixture) (redis.UniversalClient, string)) {
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	rdb, prefix := on(f)
	r := singleRailsAt(t, f.clock)[0](t) // SmartFastPay
	today := tenOClock(f, r)
	ctx := context.Background()
	const limit = 250_000
	timing := func(c *Config) {
		c.DailyLimitCents = limit
		c.SingleConcurrency = 1
		if rdb != nil {
			c.Redis, c.Prefix = rdb, prefix
		}
	}
	first := singleBatch(r, "midway", 2) // 200,000 cents
	second := singleBatch(r, "midway-other", 1)
	e := r.engine(f, timing)
	e2 := r.engine(f, timing)
	e.checkEviction(ctx)
	e2.checkEviction(ctx)
	var posts atomic.Int32
	var secondErr error
	e.beforePost = func(batchID string) {
		if batchID != first.BatchID || posts.Add(1) != 2 {
			return
		}
		// Payee 0 is paid; payee 1 is about to be posted.
		if err := e.st.rdb.Del(ctx, e.budget.Key(today.String())).Err(); err != nil {
			t.Error(err)
		}
		b := second
		secondErr = e2.process(ctx, &b, nil, testLogger())
	}
	b := first
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if secondErr != nil {
		t.Fatalf("second batch: %v", secondErr)
	}
	if paid := paidOf(r, first, second); paid > limit {
		t.Fatalf("paid %d on %s, above the account's daily limit %d: the budget's keys were lost while a batch was posting, and the rest of that batch was never counted again",
			paid, today, limit)
	}
	if posts.Load() < 2 {
		t.Fatalf("the first batch posted %d times, want its second payee tried after the loss", posts.Load())
	}
}
