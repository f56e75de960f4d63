package testenv

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv/ports"

	"github.com/redis/go-redis/v9"
)

// RedisClusterMasters is the number of masters of [RedisCluster]: the
// smallest Redis Cluster redis-cli accepts.
const RedisClusterMasters = 3

// RedisClusterServer is a test's handle on a real three-master Redis Cluster
// (no replicas), shared by the test binary: a go-redis cluster client and a
// key prefix that belongs to this test alone.
type RedisClusterServer struct {
	backend *redisClusterBackend
	prefix  string
	client  *redis.ClusterClient
}

type redisClusterBackend struct {
	procs []*redisProcess
}

func (b *redisClusterBackend) addrs() []string {
	var out []string
	for _, p := range b.procs {
		out = append(out, p.addr())
	}
	return out
}

func (b *redisClusterBackend) stop() {
	for _, p := range b.procs {
		p.stop()
	}
}

// RedisCluster returns a real Redis Cluster of [RedisClusterMasters] masters
// for t, started once per test binary from the redis-server binary (PATH or
// REDIS_SERVER_BIN) in cluster mode and joined with
//
//	redis-cli --cluster create <the masters> --cluster-replicas 0 --cluster-yes
//
// on free loopback ports, without persistence. Every slot is served when it
// returns. Keys must stay under [RedisClusterServer.Prefix]; they are deleted
// at cleanup. A script or multi-key command whose keys hash to different
// slots fails with CROSSSLOT, as in production on Redis Cluster; keys that
// share a hash tag ("{tag}") live in one slot.
//
// With no redis-server or redis-cli the test is skipped, or fails when
// TEST_REQUIRE_REAL_REDIS=1. REDIS_URL and Docker are not used.
func RedisCluster(t testing.TB) *RedisClusterServer {
	t.Helper()
	env := osRedisEnv()
	bin, err := env.redisBinary()
	if err != nil {
		unavailable(t, env.getenv, fmt.Errorf("%w (a Redis Cluster needs the redis-server binary)", errNoRealRedis))
		return nil
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		unavailable(t, env.getenv, fmt.Errorf("%w: no redis-cli in PATH to create a Redis Cluster", errNoRealRedis))
		return nil
	}
	b, err := shared.redisCluster.get(func() (*redisClusterBackend, func(), error) {
		b, err := startRedisCluster(context.Background(), bin, cli)
		if err != nil {
			return nil, nil, err
		}
		return b, b.stop, nil
	})
	if err != nil {
		t.Fatalf("testenv: start Redis Cluster: %v", err)
	}
	rc := &RedisClusterServer{backend: b, prefix: redisPrefix(t.Name())}
	rc.client = redis.NewClusterClient(rc.options())
	t.Cleanup(func() {
		rc.deletePrefix(t)
		_ = rc.client.Close()
	})
	return rc
}

func startRedisCluster(ctx context.Context, bin, cli string) (*redisClusterBackend, error) {
	var lastErr error
	for range 3 { // a free port may be taken before redis-server binds it
		b, err := tryRedisCluster(ctx, bin, cli)
		if err == nil {
			return b, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryRedisCluster(ctx context.Context, bin, cli string) (_ *redisClusterBackend, err error) {
	b := &redisClusterBackend{}
	defer func() {
		if err != nil {
			b.stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for range RedisClusterMasters {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		p := &redisProcess{bin: bin, port: ports[0], keepDir: true, extra: []string{
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
			// A test must see the CROSSSLOT error, never a half-served
			// cluster answering for some slots.
			"--cluster-require-full-coverage", "yes",
		}}
		if err := p.start(ctx); err != nil {
			return nil, err
		}
		b.procs = append(b.procs, p)
	}
	args := append([]string{"--cluster", "create"}, b.addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, lastLine(out))
	}
	// Wait until every node sees the whole cluster and serves every slot.
	for _, addr := range b.addrs() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := waitClusterOK(ctx, c)
		_ = c.Close()
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", addr, err)
		}
	}
	return b, nil
}

func waitClusterOK(ctx context.Context, c *redis.Client) error {
	want := []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:" + strconv.Itoa(RedisClusterMasters)}
	var info string
	for {
		info, _ = c.ClusterInfo(ctx).Result()
		ok := true
		for _, w := range want {
			if !strings.Contains(info, w) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %w: %q", ctx.Err(), strings.Join(strings.Fields(info), " "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func (rc *RedisClusterServer) options() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: rc.backend.addrs()}
}

// Addrs returns the masters' "host:port", the seed list of a cluster client.
func (rc *RedisClusterServer) Addrs() []string { return rc.backend.addrs() }

// URL returns the cluster in go-redis's cluster URL form,
// "redis://<first>?addr=<second>&addr=<third>", which
// redis.ParseClusterURL reads; whether the workers take this form (in
// REDIS_URL or another setting) is their configuration's decision.
func (rc *RedisClusterServer) URL() string {
	addrs := rc.backend.addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Client returns the test's go-redis cluster client, closed at cleanup.
func (rc *RedisClusterServer) Client() *redis.ClusterClient { return rc.client }

// NewClient returns a new, independent cluster client, closed at t's
// cleanup.
func (rc *RedisClusterServer) NewClient(t testing.TB) *redis.ClusterClient {
	c := redis.NewClusterClient(rc.options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns this test's key prefix (see [RedisServer.Prefix]). It has
// no hash-tag braces, so keys "<prefix>a" and "<prefix>b" usually land in
// different slots; code that needs them together must add a "{tag}".
func (rc *RedisClusterServer) Prefix() string { return rc.prefix }

// Key returns Prefix() followed by parts joined with ":".
func (rc *RedisClusterServer) Key(parts ...string) string {
	return rc.prefix + strings.Join(parts, ":")
}

// deletePrefix removes the test's keys from every master, one key per
// command (a multi-key UNLINK across slots would fail with CROSSSLOT).
func (rc *RedisClusterServer) deletePrefix(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := rc.client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, "*"+rc.prefix+"*", 1000).Iterator()
		pipe := m.Pipeline()
		for iter.Next(ctx) {
			pipe.Unlink(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Logf("testenv: cleaning keys *%s* on the cluster: %v", rc.prefix, err)
	}
}

// RestartMasterOf restarts the master that serves key's slot, on its port
// and with its cluster configuration (nodes.conf), without persistence:
// it comes back empty, as another Redis process (another run id), while
// the other masters keep their data. Then every key of this test's prefix
// in that slot that existed before the restart (DUMP) is written back as
// it was taken at snapshot time: a master failed over to a replica that
// missed the writes made after snap. A nil snap restores nothing (a
// restart without persistence).
func (rc *RedisClusterServer) RestartMasterOf(ctx context.Context, key string, snap map[string]string) error {
	addr, err := rc.masterOf(ctx, key)
	if err != nil {
		return err
	}
	var p *redisProcess
	for _, q := range rc.backend.procs {
		if q.addr() == addr {
			p = q
		}
	}
	if p == nil {
		return fmt.Errorf("testenv: no process serves %s", addr)
	}
	if err := p.restart(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, a := range rc.backend.addrs() {
		c := redis.NewClient(&redis.Options{Addr: a})
		err := waitClusterOK(ctx, c)
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("node %s after the restart: %w", a, err)
		}
	}
	for k, d := range snap {
		if err := restoreRetrying(ctx, rc.client, k, d, 40); err != nil {
			return err
		}
	}
	return nil
}

// SnapshotSlotOf dumps every key of this test's prefix in key's slot, for
// [RedisClusterServer.RestartMasterOf].
func (rc *RedisClusterServer) SnapshotSlotOf(ctx context.Context, key string) (map[string]string, error) {
	slot, err := rc.client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	keys, err := rc.client.ClusterGetKeysInSlot(ctx, int(slot), 100000).Result()
	if err != nil {
		return nil, err
	}
	snap := map[string]string{}
	for _, k := range keys {
		if !strings.Contains(k, rc.prefix) {
			continue
		}
		d, err := rc.client.Dump(ctx, k).Result()
		if err != nil {
			return nil, fmt.Errorf("testenv: dump %s: %w", k, err)
		}
		snap[k] = d
	}
	return snap, nil
}

// masterOf returns the address of the master serving key's slot.
func (rc *RedisClusterServer) masterOf(ctx context.Context, key string) (string, error) {
	slot, err := rc.client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", err
	}
	slots, err := rc.client.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("testenv: no master serves slot %d", slot)
}

// freePorts returns n distinct loopback ports that were free when asked and
// stay this process's (see [ports.Free]): a node restarted on its port finds
// it free.
func freePorts(n int) ([]int, error) {
	ps, err := ports.Free(n)
	if err != nil {
		return nil, fmt.Errorf("testenv: find free port: %w", err)
	}
	return ps, nil
}

// MoveSlot moves slot, with every key in it, from the master serving it to
// the master at to, as redis-cli --cluster reshard does (IMPORTING on the
// target, MIGRATING on the source, MIGRATE of its keys, then SETSLOT NODE
// on every master), and waits until every master names to for it. Every
// other slot and key stays where it was.
func (rc *RedisClusterServer) MoveSlot(ctx context.Context, slot int, to string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	from, err := rc.masterOfSlot(ctx, slot)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	nodes := map[string]*redis.Client{}
	for _, a := range rc.backend.addrs() {
		c := redis.NewClient(&redis.Options{Addr: a})
		defer c.Close()
		nodes[a] = c
	}
	src, dst := nodes[from], nodes[to]
	if src == nil || dst == nil {
		return fmt.Errorf("testenv: move slot %d: no node %s or %s", slot, from, to)
	}
	srcID, err := src.ClusterMyID(ctx).Result()
	if err != nil {
		return err
	}
	dstID, err := dst.ClusterMyID(ctx).Result()
	if err != nil {
		return err
	}
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		return fmt.Errorf("testenv: importing slot %d: %w", slot, err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		return fmt.Errorf("testenv: migrating slot %d: %w", slot, err)
	}
	host, port, _ := strings.Cut(to, ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("testenv: migrate slot %d: %w", slot, err)
		}
	}
	order := []string{to, from}
	for _, a := range rc.backend.addrs() {
		if a != to && a != from {
			order = append(order, a)
		}
	}
	for _, a := range order {
		if err := nodes[a].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			return fmt.Errorf("testenv: slot %d to %s on %s: %w", slot, to, a, err)
		}
	}
	for _, a := range rc.backend.addrs() {
		for {
			slots, err := nodes[a].ClusterSlots(ctx).Result()
			if err != nil {
				return err
			}
			done := false
			for _, s := range slots {
				if s.Start <= slot && slot <= s.End && len(s.Nodes) > 0 && s.Nodes[0].Addr == to {
					done = true
				}
			}
			if done {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("testenv: node %s does not see slot %d on %s: %w", a, slot, to, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// FirstSlotOf returns the lowest slot the master at addr serves.
func (rc *RedisClusterServer) FirstSlotOf(ctx context.Context, addr string) (int, error) {
	slots, err := rc.client.ClusterSlots(ctx).Result()
	if err != nil {
		return 0, err
	}
	first := -1
	for _, s := range slots {
		if len(s.Nodes) > 0 && s.Nodes[0].Addr == addr && (first < 0 || s.Start < first) {
			first = s.Start
		}
	}
	if first < 0 {
		return 0, fmt.Errorf("testenv: %s serves no slot", addr)
	}
	return first, nil
}

// masterOfSlot returns the address of the master serving slot.
func (rc *RedisClusterServer) masterOfSlot(ctx context.Context, slot int) (string, error) {
	slots, err := rc.client.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if s.Start <= slot && slot <= s.End && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("testenv: no master serves slot %d", slot)
}
