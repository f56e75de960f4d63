package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/testenv/apachekafka"
)

// realKafkaHeap is the JVM heap of the brokers that testenv starts.
const realKafkaHeap = "512m"

// sharedRealKafka returns the binary's one-node Apache Kafka, starting it
// at the first call. Any failure (no Java, no jars and no Maven, a broker
// that does not start) fails t with one line; it is remembered, so every
// later test of the binary fails with the same cause instead of retrying.
func sharedRealKafka(t testing.TB) *apachekafka.Cluster {
	t.Helper()
	c, err := shared.realKafka.get(func() (*apachekafka.Cluster, func(), error) {
		c, err := startRealKafka(1)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Stop, nil
	})
	if err != nil {
		t.Fatalf("testenv: real Kafka (%s=real or %s=1) unavailable: %v", EnvTestKafka, EnvRequireRealKafka, err)
		return nil
	}
	return c
}

func startRealKafka(nodes int) (*apachekafka.Cluster, error) {
	dist, err := apachekafka.FindDist(true)
	if err != nil {
		return nil, err
	}
	o := apachekafka.Options{Nodes: nodes, Dist: dist, Heap: realKafkaHeap}
	if v := os.Getenv("TESTENV_KAFKA_LOG"); v == "1" {
		o.Output = os.Stderr
	}
	return apachekafka.Start(context.Background(), o)
}

// RealKafka returns a private Apache Kafka cluster of the given number of
// nodes (3 for failure tests: replication factor 3, min.insync.replicas=2),
// that only t uses and that is stopped at t's cleanup. Kill and restart its
// nodes through [Cluster.Real]. It starts JVMs (seconds, ~350 MiB each), so
// unless TEST_KAFKA=real or TEST_REQUIRE_REAL_KAFKA=1 the test is skipped;
// with either set, a missing Java or jars fails it.
func RealKafka(t testing.TB, nodes int) *Cluster {
	t.Helper()
	env := osKafkaEnv()
	mode := env.getenv(EnvTestKafka)
	if !env.requireReal() && mode != string(KafkaReal) {
		t.Skipf("testenv: skipping: needs a real %d-node Apache Kafka; set %s=real to run it", nodes, EnvTestKafka)
		return nil
	}
	c, err := startRealKafka(nodes)
	if err != nil {
		t.Fatalf("testenv: real Kafka (%d nodes) unavailable: %v", nodes, err)
		return nil
	}
	t.Cleanup(c.Stop)
	return &Cluster{kind: KafkaReal, brokers: c.Brokers(), real: c}
}

// String describes the cluster for logs, e.g. "real(127.0.0.1:41234)".
func (c *Cluster) String() string { return fmt.Sprintf("%s(%s)", c.kind, c.BrokersCSV()) }

// WantRealKafka reports whether the environment asks for a real Apache
// Kafka (TEST_KAFKA=real or TEST_REQUIRE_REAL_KAFKA=1). Suites that start
// their own processes (pkg/chaos) use it to choose between a real cluster
// from [RealKafka] and their own fake broker; with it true, a missing Java
// or jars fails them rather than falling back.
func WantRealKafka() bool {
	env := osKafkaEnv()
	return env.requireReal() || strings.EqualFold(strings.TrimSpace(env.getenv(EnvTestKafka)), string(KafkaReal))
}
