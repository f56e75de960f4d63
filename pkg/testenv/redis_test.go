package testenv_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

func TestRedisRoundTrip(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	k := rs.Key("hello")
	if !strings.HasPrefix(k, rs.Prefix()) {
		t.Fatalf("Key %q not under Prefix %q", k, rs.Prefix())
	}
	if err := rs.Client().Set(ctx, k, "world", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// An independent client built from URL() sees the same server.
	opts, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatalf("URL %q: %v", rs.URL(), err)
	}
	if opts.Addr != rs.Addr() {
		t.Errorf("URL addr %s != Addr %s", opts.Addr, rs.Addr())
	}
	other := redis.NewClient(opts)
	defer other.Close()
	if v, err := other.Get(ctx, k).Result(); err != nil || v != "world" {
		t.Fatalf("Get via URL = %q, %v", v, err)
	}
	// Real Redis, not an emulation: miniredis does not report redis_version
	// the way a server does, and lacks INFO server's process_id.
	info, err := rs.Client().Info(ctx, "server").Result()
	if err != nil || !strings.Contains(info, "process_id:") {
		t.Fatalf("INFO server does not look like redis-server: %v", err)
	}
	t.Logf("redis kind=%s addr=%s", rs.Kind(), rs.Addr())
}

func TestRedisPrefixIsolationAndCleanup(t *testing.T) {
	var prefixes []string
	var keys []string
	var addr string
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			rs := testenv.Redis(t)
			addr = rs.Addr()
			prefixes = append(prefixes, rs.Prefix())
			for _, bad := range []string{"{", "}", "*", "?", "[", " "} {
				if strings.Contains(rs.Prefix(), bad) {
					t.Errorf("prefix %q contains %q", rs.Prefix(), bad)
				}
			}
			k := rs.Key("same-name")
			keys = append(keys, k)
			if err := rs.Client().Set(context.Background(), k, name, 0).Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if prefixes[0] == prefixes[1] {
		t.Fatalf("two tests share prefix %q", prefixes[0])
	}
	// The subtests' keys were deleted at their cleanup.
	rs := testenv.Redis(t)
	if rs.Addr() != addr {
		t.Skip("server is not shared between tests here; nothing to check")
	}
	n, err := rs.Client().Exists(context.Background(), keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d subtest key(s) survived cleanup", n)
	}
}

func TestRedisFlushAllRefusedOnSharedServer(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	if err := rs.Client().Set(ctx, rs.Key("keep"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rs.FlushAll(ctx); !errors.Is(err, testenv.ErrSharedRedis) {
		t.Fatalf("FlushAll on shared server: %v, want ErrSharedRedis", err)
	}
	if err := rs.Restart(ctx); !errors.Is(err, testenv.ErrSharedRedis) {
		t.Fatalf("Restart on shared server: %v, want ErrSharedRedis", err)
	}
	if n, _ := rs.Client().Exists(ctx, rs.Key("keep")).Result(); n != 1 {
		t.Fatal("key lost after refused FlushAll")
	}
}

func TestRedisOwnFlushAndRestart(t *testing.T) {
	own := testenv.RedisOwn(t)
	if !own.Owned() {
		t.Fatal("RedisOwn returned a shared server")
	}
	shared := testenv.Redis(t)
	if own.Addr() == shared.Addr() {
		t.Fatalf("RedisOwn returned the shared server %s", own.Addr())
	}
	ctx := context.Background()
	c := own.Client()
	mustSet := func(k string) {
		t.Helper()
		if err := c.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	mustSet("a")
	if err := shared.Client().Set(ctx, shared.Key("survivor"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := own.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("DBSize after FlushAll = %d", n)
	}
	if n, _ := shared.Client().Exists(ctx, shared.Key("survivor")).Result(); n != 1 {
		t.Fatal("FlushAll on the owned server touched the shared one")
	}

	if own.Kind() != testenv.RedisProcess {
		t.Skipf("Restart needs a redis-server process; got %s", own.Kind())
	}
	mustSet("b")
	if err := own.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Same address, empty, and the existing client reconnects.
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("after Restart DBSize = %d, %v", n, err)
	}
	mustSet("c")
}
