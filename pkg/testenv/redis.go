package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// RedisKind names where a [RedisServer] comes from.
type RedisKind string

// The kinds of Redis a test may get. There is deliberately no miniredis kind.
const (
	RedisExternal  RedisKind = "external"  // REDIS_URL
	RedisContainer RedisKind = "container" // testcontainers redis:7
	RedisProcess   RedisKind = "process"   // redis-server child process
)

// Environment variables read by [Redis] and [RedisOwn].
const (
	// EnvRequireRealRedis, when "1" (or "true"), turns "no real Redis
	// available" from a skip into a test failure. CI sets it.
	EnvRequireRealRedis = "TEST_REQUIRE_REAL_REDIS"
	// EnvRedisURL points at an existing server, used by [Redis] as is.
	EnvRedisURL = "REDIS_URL"
	// EnvRedisServerBin overrides the redis-server binary looked up in PATH.
	EnvRedisServerBin = "REDIS_SERVER_BIN"
)

// ErrSharedRedis is returned by [RedisServer.FlushAll] and
// [RedisServer.Restart] on a server that other tests share.
var ErrSharedRedis = errors.New("testenv: server is shared by other tests; use RedisOwn to flush or restart it")

// RequireRealRedis reports whether TEST_REQUIRE_REAL_REDIS asks for a real
// Redis server, failing instead of skipping when none is available.
func RequireRealRedis() bool { return requireReal(os.Getenv) }

func requireReal(getenv func(string) string) bool {
	switch strings.ToLower(strings.TrimSpace(getenv(EnvRequireRealRedis))) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// RedisServer is a test's handle on a real Redis server: a go-redis client
// and a key prefix that belongs to this test alone.
type RedisServer struct {
	backend *redisBackend
	owned   bool
	prefix  string
	client  *redis.Client
}

// Redis returns a real Redis server for t: REDIS_URL when set; else a redis
// container shared by the test binary when Docker is healthy; else a
// redis-server child process from PATH shared by the test binary.
//
// The server may be shared with other tests, so a test must keep its keys
// under [RedisServer.Prefix]; they are deleted at cleanup. With no real Redis
// at all the test is skipped, or fails when TEST_REQUIRE_REAL_REDIS=1.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return openRedis(t, false)
}

// RedisOwn returns a private Redis server that only t uses, stopped at t's
// cleanup: a redis-server child process when the binary is available (fast,
// and [RedisServer.Restart] works), else a redis container when Docker is
// healthy. REDIS_URL is not used, since that server cannot be owned. Use it
// for tests that flush or restart Redis to simulate losing it.
func RedisOwn(t testing.TB) *RedisServer {
	t.Helper()
	return openRedis(t, true)
}

// redisEnv is what the choice of a Redis source depends on, injectable so
// the decision is testable without changing the machine.
type redisEnv struct {
	getenv   func(string) string
	lookPath func(string) (string, error)
	docker   func() bool
}

func osRedisEnv() redisEnv {
	return redisEnv{getenv: os.Getenv, lookPath: exec.LookPath, docker: DockerHealthy}
}

type redisChoice struct {
	kind   RedisKind
	target string // the URL for RedisExternal, the binary for RedisProcess
}

// errNoRealRedis means none of the real sources is available.
var errNoRealRedis = errors.New("no real Redis: REDIS_URL is unset, no healthy Docker engine, and no redis-server binary (PATH or REDIS_SERVER_BIN)")

// choose picks the Redis source. own excludes REDIS_URL and prefers the
// binary over Docker.
func (e redisEnv) choose(own bool) (redisChoice, error) {
	if !own {
		if u := strings.TrimSpace(e.getenv(EnvRedisURL)); u != "" {
			return redisChoice{kind: RedisExternal, target: u}, nil
		}
	}
	bin, binErr := e.redisBinary()
	if own && binErr == nil {
		return redisChoice{kind: RedisProcess, target: bin}, nil
	}
	if e.docker() {
		return redisChoice{kind: RedisContainer}, nil
	}
	if binErr == nil {
		return redisChoice{kind: RedisProcess, target: bin}, nil
	}
	if own {
		return redisChoice{}, fmt.Errorf("%w (a private server is needed; REDIS_URL cannot be owned)", errNoRealRedis)
	}
	return redisChoice{}, errNoRealRedis
}

func (e redisEnv) redisBinary() (string, error) {
	if b := strings.TrimSpace(e.getenv(EnvRedisServerBin)); b != "" {
		return e.lookPath(b)
	}
	return e.lookPath("redis-server")
}

// unavailable is what a test does when no real Redis exists: skip, or fail
// under TEST_REQUIRE_REAL_REDIS.
func unavailable(t testing.TB, getenv func(string) string, err error) {
	t.Helper()
	if requireReal(getenv) {
		t.Fatalf("testenv: %v; %s=1 requires a real Redis, so this is a failure, not a skip", err, EnvRequireRealRedis)
		return
	}
	t.Skipf("testenv: skipping: %v (set %s=1 to make this a failure)", err, EnvRequireRealRedis)
}

func openRedis(t testing.TB, own bool) *RedisServer {
	t.Helper()
	env := osRedisEnv()
	choice, err := env.choose(own)
	if err != nil {
		unavailable(t, env.getenv, err)
		return nil
	}
	var b *redisBackend
	switch {
	case choice.kind == RedisExternal:
		b, err = externalBackend(choice.target)
	case own && choice.kind == RedisProcess:
		b, err = processBackend(choice.target)
	case own && choice.kind == RedisContainer:
		b, err = containerBackend()
	case choice.kind == RedisProcess:
		b, err = shared.redis.get(func() (*redisBackend, func(), error) {
			b, err := processBackend(choice.target)
			if err != nil {
				return nil, nil, err
			}
			return b, b.stop, nil
		})
	default:
		b, err = shared.redis.get(func() (*redisBackend, func(), error) {
			b, err := containerBackend()
			if err != nil {
				return nil, nil, err
			}
			return b, b.stop, nil
		})
	}
	if err != nil {
		t.Fatalf("testenv: start Redis (%s): %v", choice.kind, err)
	}
	if own {
		t.Cleanup(b.stop)
	}
	rs := &RedisServer{backend: b, owned: own, prefix: redisPrefix(t.Name())}
	rs.client = redis.NewClient(b.options())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rs.client.Ping(ctx).Err(); err != nil {
		_ = rs.client.Close()
		t.Fatalf("testenv: Redis (%s) at %s does not answer PING: %v", b.kind, b.addr, err)
	}
	t.Cleanup(func() {
		if !own {
			rs.deletePrefix(t)
		}
		_ = rs.client.Close()
	})
	return rs
}

func redisPrefix(testName string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := sanitize(testName, func(r rune) bool { return r == '_' || r == '-' || r == '.' || isAlnum(r) })
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return "t:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

// deletePrefix removes the test's keys from a shared server.
func (rs *RedisServer) deletePrefix(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// "*prefix*" also catches keys that libraries wrap, e.g. redis_rate's
	// "rate:{<prefix>...}".
	iter := rs.client.Scan(ctx, 0, "*"+rs.prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			rs.client.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rs.client.Unlink(ctx, batch...)
	}
	if err := iter.Err(); err != nil {
		t.Logf("testenv: cleaning keys *%s*: %v", rs.prefix, err)
	}
}

// Kind says where the server comes from.
func (rs *RedisServer) Kind() RedisKind { return rs.backend.kind }

// Owned reports whether the server belongs to this test alone ([RedisOwn]).
func (rs *RedisServer) Owned() bool { return rs.owned }

// Client returns the test's go-redis client, closed at cleanup. Open more
// with [RedisServer.NewClient] to model separate replicas.
func (rs *RedisServer) Client() *redis.Client { return rs.client }

// NewClient returns a new, independent go-redis client on the same server,
// closed at t's cleanup.
func (rs *RedisServer) NewClient(t testing.TB) *redis.Client {
	c := redis.NewClient(rs.backend.options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// URL returns a redis:// URL for the server, the format of REDIS_URL.
func (rs *RedisServer) URL() string { return rs.backend.url }

// Addr returns the server's "host:port".
func (rs *RedisServer) Addr() string { return rs.backend.addr }

// Prefix returns this test's key prefix, like "t:TestX_sub:1a2b3c4d:". It
// contains no hash-tag braces and no glob characters, so code under test can
// append "{tag}" keys to it. On a shared server every key that contains it
// (as a prefix, or wrapped by a library such as "rate:{<prefix>x}") is
// deleted at cleanup.
func (rs *RedisServer) Prefix() string { return rs.prefix }

// Key returns Prefix() followed by parts joined with ":".
func (rs *RedisServer) Key(parts ...string) string {
	return rs.prefix + strings.Join(parts, ":")
}

// FlushAll deletes every key on the server, to simulate losing Redis. It
// affects the whole server, so it only works on a server from [RedisOwn];
// on a shared server it returns [ErrSharedRedis] and changes nothing.
func (rs *RedisServer) FlushAll(ctx context.Context) error {
	if !rs.owned {
		return ErrSharedRedis
	}
	return rs.client.FlushAll(ctx).Err()
}

// Restart stops the server and starts it again on the same port with no
// data, like a crash of a Redis without persistence. Clients see connection
// errors while it is down and reconnect afterwards. It needs a server from
// [RedisOwn] backed by a redis-server process; otherwise it returns an error.
func (rs *RedisServer) Restart(ctx context.Context) error {
	if !rs.owned {
		return ErrSharedRedis
	}
	if rs.backend.proc == nil {
		return fmt.Errorf("testenv: Restart needs a redis-server process, this server is a %s", rs.backend.kind)
	}
	return rs.backend.proc.restart(ctx)
}

// RestartKeeping restarts the server like [RedisServer.Restart], with only
// the given keys carried over (DUMP before, RESTORE after): a Redis
// restarted from a snapshot older than its last writes, or failed over to
// a replica that missed them. A key missing before the restart is an
// error.
func (rs *RedisServer) RestartKeeping(ctx context.Context, keys ...string) error {
	dumps := make([]string, len(keys))
	for i, k := range keys {
		d, err := rs.client.Dump(ctx, k).Result()
		if err != nil {
			return fmt.Errorf("testenv: dump %s: %w", k, err)
		}
		dumps[i] = d
	}
	if err := rs.Restart(ctx); err != nil {
		return err
	}
	for i, k := range keys {
		if err := restoreRetrying(ctx, rs.client, k, dumps[i], 20); err != nil {
			return err
		}
	}
	return nil
}

// restoreRetrying writes key back from its DUMP, replacing it, trying
// again every 50 ms up to tries times: the pool's connections died with
// the restarted server, and a cluster takes a moment to route to it again.
func restoreRetrying(ctx context.Context, c redis.Cmdable, key, dump string, tries int) error {
	for try := 0; ; try++ {
		err := c.RestoreReplace(ctx, key, 0, dump).Err()
		if err == nil {
			return nil
		}
		if try == tries {
			return fmt.Errorf("testenv: restore %s: %w", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisBackend is one server, possibly shared by many RedisServer handles.
type redisBackend struct {
	kind RedisKind
	url  string
	addr string
	opts *redis.Options
	proc *redisProcess
	stop func()
}

func (b *redisBackend) options() *redis.Options {
	o := *b.opts
	return &o
}

func externalBackend(url string) (*redisBackend, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvRedisURL, err)
	}
	return &redisBackend{kind: RedisExternal, url: url, addr: opts.Addr, opts: opts, stop: func() {}}, nil
}

func containerBackend() (*redisBackend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := tcredis.Run(ctx, RedisImage)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.Background())
		}
		return nil, err
	}
	url, err := c.ConnectionString(ctx)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	stop := func() { _ = c.Terminate(context.Background()) }
	return &redisBackend{kind: RedisContainer, url: url, addr: opts.Addr, opts: opts, stop: stop}, nil
}

func processBackend(bin string) (*redisBackend, error) {
	var lastErr error
	for range 5 { // a free port may be taken before redis-server binds it
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		p := &redisProcess{bin: bin, port: port}
		if err := p.start(context.Background()); err != nil {
			lastErr = err
			continue
		}
		addr := p.addr()
		url := "redis://" + addr + "/0"
		opts, _ := redis.ParseURL(url)
		return &redisBackend{kind: RedisProcess, url: url, addr: addr, opts: opts, proc: p, stop: p.stop}, nil
	}
	return nil, lastErr
}
