package ops

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// fakeKafkaAt starts a kfake broker on port (0: any) with topics of one
// partition each. It allows auto-creation, so a check that created topics
// would be caught.
func fakeKafkaAt(t *testing.T, port int, topics ...string) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation()}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(1, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testClient(t *testing.T, brokers ...string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

var testTopics = []Topic{{"payouts.requests.v1", "TOPIC_REQUESTS"}, {"payouts.batches.v1", "TOPIC_BATCHES"}}

// A missing topic is one line naming the topic, its setting and the
// brokers, and the check never creates it.
func TestCheckTopicsNamesTheMissingTopic(t *testing.T) {
	k := fakeKafkaAt(t, 0, "payouts.requests.v1")
	brokers := k.ListenAddrs()
	cl := testClient(t, brokers...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := CheckTopics(ctx, cl, brokers, testTopics, 0, nil)
	want := "topic payouts.batches.v1 (TOPIC_BATCHES) does not exist on KAFKA_BROKERS=" + strings.Join(brokers, ",")
	if err == nil || err.Error() != want {
		t.Fatalf("CheckTopics = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrTopicMissing) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("not one line wrapping ErrTopicMissing: %v", err)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if details.Has("payouts.batches.v1") {
		t.Fatal("the check created the missing topic")
	}
	if err := CheckTopics(ctx, cl, brokers, testTopics[:1], 0, nil); err != nil {
		t.Fatalf("existing topic: %v", err)
	}
}

// With a wait, a topic created while the worker starts (a topic job that
// runs beside it) is found: the topic is created only once the check has
// said it waits, so the first try certainly missed it.
func TestCheckTopicsWaitsForATopicCreatedMeanwhile(t *testing.T) {
	k := fakeKafkaAt(t, 0, "payouts.requests.v1")
	brokers := k.ListenAddrs()
	cl := testClient(t, brokers...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waiting := make(chan struct{})
	log := slog.New(onWarn{func() { close(waiting) }})
	go func() {
		<-waiting
		if _, err := kadm.NewClient(testClient(t, brokers...)).CreateTopic(ctx, 1, 1, nil, "payouts.batches.v1"); err != nil {
			t.Error(err)
		}
	}()
	if err := CheckTopics(ctx, cl, brokers, testTopics, 15*time.Second, log); err != nil {
		t.Fatalf("CheckTopics = %v, want the topic found once created", err)
	}
}

// onWarn is a slog handler that calls f on the first warning.
type onWarn struct{ f func() }

func (h onWarn) Enabled(context.Context, slog.Level) bool { return true }
func (h onWarn) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && h.f != nil {
		h.f()
	}
	return nil
}
func (h onWarn) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onWarn) WithGroup(string) slog.Handler      { return h }

// A worker whose topic is missing stops at start with the one line, and its
// engine never runs.
func TestWorkerRefusesToStartWithoutItsTopics(t *testing.T) {
	k := fakeKafkaAt(t, 0, "payouts.requests.v1")
	w := Worker{MetricsAddr: "127.0.0.1:0", Topics: testTopics, TopicWait: -1,
		LagKafka: []kgo.Opt{kgo.SeedBrokers(k.ListenAddrs()...)}}
	err := w.Run(context.Background(), func(context.Context) error {
		t.Error("run called with a topic missing")
		return nil
	})
	var te *TopicsError
	if !errors.As(err, &te) || te.Topic.Setting != "TOPIC_BATCHES" {
		t.Fatalf("Run = %v, want a TopicsError naming TOPIC_BATCHES", err)
	}
}

// /readyz follows Kafka: 200 while the brokers answer for the topics, 503
// naming kafka while they are down, 200 again when they come back on the
// same address; and 503 naming any other dependency that fails.
func TestWorkerReadinessFollowsKafkaAndDependencies(t *testing.T) {
	port := testenv.MustFreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	k := fakeKafkaAt(t, port, "payouts.requests.v1", "payouts.batches.v1")
	var redisDown atomic.Bool
	var metrics net.Addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := Worker{
		MetricsAddr:   "127.0.0.1:0",
		Ready:         func() bool { return true },
		ReadyInterval: 10 * time.Millisecond,
		Topics:        testTopics,
		LagKafka:      []kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })},
		Dependencies: []Dependency{{Name: "redis", Check: func(context.Context) error {
			if redisDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}},
		Started: func(a net.Addr) { metrics = a },
	}
	err := w.Run(ctx, func(context.Context) error {
		url := "http://" + metrics.String() + "/readyz"
		eventually(t, url, "ready with Kafka and Redis up", status(200))
		k.Close()
		eventually(t, url, "not ready with Kafka down", func(code int, body string) bool {
			return code == 503 && strings.HasPrefix(body, "not ready: kafka: ")
		})
		fakeKafkaAt(t, port, "payouts.requests.v1", "payouts.batches.v1")
		eventuallyLong(t, url, "ready with Kafka back", status(200))
		redisDown.Store(true)
		eventually(t, url, "not ready with Redis down", func(code int, body string) bool {
			return code == 503 && body == "not ready: redis: connection refused\n"
		})
		redisDown.Store(false)
		eventually(t, url, "ready with Redis back", status(200))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// eventuallyLong is eventually with the patience of a client reconnecting
// to a broker that came back.
func eventuallyLong(t *testing.T, url, what string, ok func(code int, body string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := scrape(t, url)
		if ok(code, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET %s = %d %q", what, url, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The base options of a worker carry a kprom hook, which registers its
// collectors once per client: the topic checks and the lag exporter share
// one client, or the second would panic with a duplicate registration.
func TestWorkerTopicsAndLagShareOneClient(t *testing.T) {
	k := fakeKafkaAt(t, 0, "payouts.requests.v1", "payouts.batches.v1")
	hook := kprom.NewMetrics("ops_test", kprom.Registerer(prometheus.NewRegistry()))
	w := Worker{MetricsAddr: "127.0.0.1:0", Topics: testTopics, TopicWait: -1, Group: "g",
		LagKafka: []kgo.Opt{kgo.SeedBrokers(k.ListenAddrs()...), kgo.WithHooks(hook)}}
	if err := w.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
