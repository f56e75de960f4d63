package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The cluster has three masters serving every slot; keys spread over them;
// a script touching two slots fails with CROSSSLOT, one hash tag makes it
// work; the test's keys are gone after cleanup.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	var prefix string
	var seed []string
	t.Run("use", func(t *testing.T) {
		rc := testenv.RedisCluster(t)
		prefix, seed = rc.Prefix(), rc.Addrs()
		c := rc.Client()
		if n := len(rc.Addrs()); n != testenv.RedisClusterMasters {
			t.Fatalf("%d addresses, want %d", n, testenv.RedisClusterMasters)
		}
		opts, err := redis.ParseClusterURL(rc.URL())
		if err != nil || strings.Join(opts.Addrs, ",") != strings.Join(rc.Addrs(), ",") {
			t.Fatalf("URL %q parses to %v, %v; want %v", rc.URL(), opts, err, rc.Addrs())
		}
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		covered, masters := 0, map[string]bool{}
		for _, s := range slots {
			covered += s.End - s.Start + 1
			masters[s.Nodes[0].Addr] = true
		}
		if covered != 16384 || len(masters) != 3 {
			t.Fatalf("slots cover %d by %d masters, want 16384 by 3", covered, len(masters))
		}

		holders := map[string]bool{}
		for i := range 30 {
			k := rc.Key(fmt.Sprint(i))
			if err := c.Set(ctx, k, i, 0).Err(); err != nil {
				t.Fatal(err)
			}
			m, err := c.MasterForKey(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			holders[m.Options().Addr] = true
		}
		if len(holders) != 3 {
			t.Errorf("30 keys landed on %d masters, want all 3", len(holders))
		}

		script := redis.NewScript(`redis.call("SET", KEYS[1], "x"); return redis.call("SET", KEYS[2], "y")`)
		a, b := rc.Key("a"), rc.Key("b") // different slots
		sa, _ := c.ClusterKeySlot(ctx, a).Result()
		sb, _ := c.ClusterKeySlot(ctx, b).Result()
		if sa == sb {
			t.Fatalf("%s and %s share slot %d; pick other names", a, b, sa)
		}
		err = script.Run(ctx, c, []string{a, b}).Err()
		if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
			t.Fatalf("two-slot script: err = %v, want CROSSSLOT", err)
		}
		ta, tb := rc.Key("{p1}:a"), rc.Key("{p1}:b")
		if err := script.Run(ctx, c, []string{ta, tb}).Err(); err != nil {
			t.Fatalf("hash-tagged script: %v", err)
		}
	})
	// After the subtest's cleanup no key of its prefix is left.
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seed})
	defer c.Close()
	var left atomic.Int64 // ForEachMaster runs concurrently
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, "*"+prefix+"*").Result()
		left.Add(int64(len(keys)))
		return err
	})
	if err != nil || left.Load() != 0 {
		t.Fatalf("%d keys of %s left after cleanup (%v)", left.Load(), prefix, err)
	}
}
