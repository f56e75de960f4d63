package track

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// Base options that carry hooks (kprom, as the tracker's binary gives
// them) need ReadKafka: the rebuild of the polling schedule after a Redis
// loss reads the batch status topic with a client of its own, which built
// from those options would register the hook's collectors again, and
// panic. With ReadKafka the rebuild reads the topic and completes.
func TestKafkaHooksNeedReadKafka(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	hooked := func(c *Config) {
		hook := kprom.NewMetrics("track_test", kprom.Registerer(prometheus.NewRegistry()))
		c.Kafka = append(c.Kafka[:len(c.Kafka):len(c.Kafka)], kgo.WithHooks(hook))
	}
	var cfg Config
	f.engine(func(c *Config) { cfg = *c })
	hooked(&cfg)
	cfg.Registerer = prometheus.NewRegistry()
	if e, err := New(cfg); err == nil {
		e.Close()
		t.Fatal("hooks without ReadKafka accepted")
	}
	e, _ := f.engine(hooked, func(c *Config) { c.ReadKafka = []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...)} })
	res, err := e.PollOnce(context.Background()) // a fresh Redis: the schedule is rebuilt
	if err != nil || !res.Rebuilt {
		t.Fatalf("poll on a fresh Redis: %+v, %v; want the schedule rebuilt", res, err)
	}
}

// A rebuild of the schedule that fails (here its read of the batch status
// topic: Kafka never answers) is counted, so that a tracker polling
// nothing round after round is alerted on (PayoutsTrackerRebuildFailing).
func TestFailedRebuildCounted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	addr := "127.0.0.1:" + itoa(mustFreePort(t)) // Kafka never answers
	e, _ := f.engine(func(c *Config) { c.Kafka = kafkaOpts(addr) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res, err := e.PollOnce(ctx); err == nil || res.Rebuilt {
		t.Fatalf("poll on a fresh Redis, Kafka unreachable: %+v, %v; want the rebuild failed", res, err)
	}
	if n := testutil.ToFloat64(e.m.rebuildErrors); n != 1 {
		t.Fatalf("payouts_tracker_poll_rebuild_errors_total %v, want 1", n)
	}
}
