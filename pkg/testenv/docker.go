package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv/ports"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/wompi-payouts/pipeline/pkg/testenv/apachekafka"
)

// Container images started through testcontainers-go. They are pinned so a
// run is reproducible; bump them deliberately.
const (
	RedpandaImage = "docker.redpanda.com/redpandadata/redpanda:v25.2.4"
	RedisImage    = "redis:7"
)

var docker struct {
	once    sync.Once
	healthy bool
	reason  string
}

// DockerHealthy reports whether a Docker engine answers testcontainers'
// health check. The probe runs once per test binary and fails fast (a few
// milliseconds) when there is no engine. Setting TESTENV_DOCKER=0 skips the
// probe and reports false, to force the local fallbacks on a Docker host.
func DockerHealthy() bool {
	docker.once.Do(func() {
		docker.healthy, docker.reason = probeDocker()
	})
	return docker.healthy
}

func probeDocker() (healthy bool, reason string) {
	if v := os.Getenv("TESTENV_DOCKER"); v == "0" || strings.EqualFold(v, "false") {
		return false, "TESTENV_DOCKER=0"
	}
	defer func() {
		// testcontainers has panicked on odd Docker configurations in the
		// past; a panic here means "no usable engine", not a broken test.
		if r := recover(); r != nil {
			healthy, reason = false, fmt.Sprint("docker probe panicked: ", r)
		}
	}()
	p, err := testcontainers.ProviderDocker.GetProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Health(ctx); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free when asked and that
// is never handed out again while this process lives (see [ports.Free]).
func FreePort() (int, error) {
	p, err := ports.One()
	if err != nil {
		return 0, fmt.Errorf("testenv: find free port: %w", err)
	}
	return p, nil
}

// MustFreePort is [FreePort] that fails the test on error.
func MustFreePort(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shared holds resources that live for the whole test binary.
var shared struct {
	mu       sync.Mutex
	closers  []func()
	redpanda *sharedOnce[[]string]
	redis    *sharedOnce[*redisBackend]
	// realKafka is the binary's one-node Apache Kafka.
	realKafka *sharedOnce[*apachekafka.Cluster]
	// redisCluster is the binary's three-master Redis Cluster.
	redisCluster *sharedOnce[*redisClusterBackend]
}

// sharedOnce starts a resource once per binary and remembers the error, so
// every test that needs it reports the same cause.
type sharedOnce[T any] struct {
	once sync.Once
	val  T
	err  error
}

func (s *sharedOnce[T]) get(start func() (T, func(), error)) (T, error) {
	s.once.Do(func() {
		var stop func()
		s.val, stop, s.err = start()
		if stop != nil {
			shared.mu.Lock()
			shared.closers = append(shared.closers, stop)
			shared.mu.Unlock()
		}
	})
	return s.val, s.err
}

func init() {
	shared.redpanda = &sharedOnce[[]string]{}
	shared.redis = &sharedOnce[*redisBackend]{}
	shared.realKafka = &sharedOnce[*apachekafka.Cluster]{}
	shared.redisCluster = &sharedOnce[*redisClusterBackend]{}
}

// Main runs the tests and then stops the servers and containers shared by
// the test binary. Use it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// It is optional: without it the shared redis-server dies with the binary
// and containers are reaped by Ryuk.
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	closers := shared.closers
	shared.closers = nil
	shared.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	os.Exit(code)
}
