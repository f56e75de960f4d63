package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go/modules/redpanda"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/testenv/apachekafka"
)

// DefaultPartitions is the partition count of topics that kfake creates on
// demand (auto-creation, or CreateTopics with -1 partitions).
const DefaultPartitions = 3

// KafkaKind names where a [Cluster] comes from.
type KafkaKind string

// The kinds of Kafka a test may get.
const (
	KafkaExternal KafkaKind = "external" // KAFKA_BROKERS
	KafkaReal     KafkaKind = "real"     // Apache Kafka from the cached jars (pkg/testenv/apachekafka)
	KafkaRedpanda KafkaKind = "redpanda" // testcontainers Redpanda
	KafkaFake     KafkaKind = "kfake"    // in-process kfake
)

// Environment variables read by [Kafka] (besides KAFKA_BROKERS) and
// [RealKafka].
const (
	// EnvTestKafka chooses the Kafka explicitly: "real" (Apache Kafka,
	// started from the jars that Maven caches), "kfake" or "redpanda".
	// Unset: Redpanda when Docker is healthy, else kfake, so a plain
	// `go test ./...` needs nothing but Go.
	EnvTestKafka = "TEST_KAFKA"
	// EnvRequireRealKafka, when "1" (or "true"), means TEST_KAFKA=real and
	// makes a missing Java, missing jars or a broker that does not start a
	// test failure, never a fallback to kfake. CI sets it.
	EnvRequireRealKafka = "TEST_REQUIRE_REAL_KAFKA"
)

// Cluster is a test's handle on a Kafka-protocol cluster. Topics are shared
// with every other test that uses the same cluster, so tests create their
// own with [Cluster.Topic].
type Cluster struct {
	kind    KafkaKind
	brokers []string
	fake    *kfake.Cluster
	real    *apachekafka.Cluster
}

// KafkaOption tunes [Kafka]. Options that only make sense for kfake are
// ignored on a real cluster.
type KafkaOption func(*kafkaConfig)

type kafkaConfig struct {
	partitions int
	fakeOpts   []kfake.Opt
	kfakeOnly  bool
}

// WithKFake makes [Kafka] return a fresh kfake cluster whatever the
// environment says (TEST_KAFKA, TEST_REQUIRE_REAL_KAFKA, KAFKA_BROKERS),
// for tests that drive kfake's fault injection through [Cluster.Fake] or
// test kfake-only behaviour. They are unit tests of our handling of a
// fault, not of the broker.
func WithKFake() KafkaOption {
	return func(c *kafkaConfig) { c.kfakeOnly = true }
}

// WithDefaultPartitions sets the partition count of auto-created topics on
// kfake (default [DefaultPartitions]).
func WithDefaultPartitions(n int) KafkaOption {
	return func(c *kafkaConfig) { c.partitions = n }
}

// WithFakeOptions passes extra options to kfake.NewCluster, for example
// kfake.NumBrokers or kfake.SeedTopics. Ignored unless the cluster is kfake.
func WithFakeOptions(opts ...kfake.Opt) KafkaOption {
	return func(c *kafkaConfig) { c.fakeOpts = append(c.fakeOpts, opts...) }
}

// Kafka returns a Kafka-protocol cluster for t, in this order:
//   - with [WithKFake], a fresh in-process kfake cluster;
//   - the brokers in KAFKA_BROKERS when set;
//   - with TEST_KAFKA=real or TEST_REQUIRE_REAL_KAFKA=1, one real Apache
//     Kafka broker shared by the test binary (see [RealKafka]), started at
//     the first call and stopped by [Main] (or killed with the binary);
//   - with TEST_KAFKA=redpanda, or TEST_KAFKA unset and a healthy Docker, a
//     Redpanda container shared by the test binary;
//   - else (TEST_KAFKA=kfake or unset) a fresh in-process kfake cluster
//     (auto topic creation on, [DefaultPartitions] partitions) that is
//     closed at t's cleanup.
//
// Under `go test -fuzz` every call gives kfake, as with [WithKFake]: each
// fuzz worker process would start its own broker.
//
// A shared cluster's topics are seen by every test of the binary, so tests
// create their own with [Cluster.Topic]. A failure to reach the chosen
// cluster fails the test; it never silently falls back to another kind.
func Kafka(t testing.TB, opts ...KafkaOption) *Cluster {
	t.Helper()
	cfg := kafkaConfig{partitions: DefaultPartitions}
	for _, o := range opts {
		o(&cfg)
	}
	env := osKafkaEnv()
	if fuzzing() {
		// Every fuzz worker process runs the fuzz target's setup: each would
		// start its own JVM broker and spend the fuzz time waiting for it
		// (seen: 0 of 32 baseline inputs run in 10 s). Fuzzing tests our
		// code's input handling, so it runs on kfake; the seed corpus, run
		// as a plain test (no -fuzz), still gets the chosen Kafka.
		cfg.kfakeOnly = true
	}
	kind, err := env.choose(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	switch kind {
	case KafkaExternal:
		return &Cluster{kind: KafkaExternal, brokers: splitList(os.Getenv("KAFKA_BROKERS"))}
	case KafkaReal:
		rc := sharedRealKafka(t)
		return &Cluster{kind: KafkaReal, brokers: rc.Brokers(), real: rc}
	case KafkaRedpanda:
		brokers, err := shared.redpanda.get(startRedpanda)
		if err != nil {
			t.Fatalf("testenv: Redpanda (%s) did not start: %v", RedpandaImage, err)
		}
		return &Cluster{kind: KafkaRedpanda, brokers: brokers}
	}
	fopts := append([]kfake.Opt{
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.partitions),
	}, cfg.fakeOpts...)
	fc, err := kfake.NewCluster(fopts...)
	if err != nil {
		t.Fatalf("testenv: start kfake: %v", err)
	}
	t.Cleanup(fc.Close)
	return &Cluster{kind: KafkaFake, brokers: fc.ListenAddrs(), fake: fc}
}

// fuzzing reports whether this process fuzzes (go test -fuzz): the
// coordinator or one of its workers.
func fuzzing() bool {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return true
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return true
	}
	return false
}

// kafkaEnv is what the choice of a Kafka depends on, injectable so the
// decision is testable without changing the machine.
type kafkaEnv struct {
	getenv func(string) string
	docker func() bool
}

func osKafkaEnv() kafkaEnv { return kafkaEnv{getenv: os.Getenv, docker: DockerHealthy} }

// requireRealKafka reports whether TEST_REQUIRE_REAL_KAFKA is set.
func (e kafkaEnv) requireReal() bool {
	switch strings.ToLower(strings.TrimSpace(e.getenv(EnvRequireRealKafka))) {
	case "1", "true", "yes":
		return true
	}
	return false
}

func (e kafkaEnv) choose(cfg kafkaConfig) (KafkaKind, error) {
	if cfg.kfakeOnly {
		return KafkaFake, nil
	}
	if strings.TrimSpace(e.getenv("KAFKA_BROKERS")) != "" {
		return KafkaExternal, nil
	}
	mode := strings.ToLower(strings.TrimSpace(e.getenv(EnvTestKafka)))
	if e.requireReal() {
		if mode != "" && mode != string(KafkaReal) {
			return "", fmt.Errorf("%s=1 contradicts %s=%s: a real Apache Kafka is required", EnvRequireRealKafka, EnvTestKafka, mode)
		}
		return KafkaReal, nil
	}
	switch mode {
	case string(KafkaReal):
		return KafkaReal, nil
	case string(KafkaFake):
		return KafkaFake, nil
	case string(KafkaRedpanda):
		if !e.docker() {
			return "", fmt.Errorf("%s=redpanda but no healthy Docker engine", EnvTestKafka)
		}
		return KafkaRedpanda, nil
	case "":
		if e.docker() {
			return KafkaRedpanda, nil
		}
		return KafkaFake, nil
	}
	return "", fmt.Errorf("%s=%q: want real, kfake or redpanda", EnvTestKafka, mode)
}

func startRedpanda() ([]string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := redpanda.Run(ctx, RedpandaImage, redpanda.WithAutoCreateTopics())
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.Background())
		}
		return nil, nil, err
	}
	seed, err := c.KafkaSeedBroker(ctx)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, nil, err
	}
	stop := func() { _ = c.Terminate(context.Background()) }
	return []string{seed}, stop, nil
}

// Kind says where the cluster comes from.
func (c *Cluster) Kind() KafkaKind { return c.kind }

// Brokers returns the seed brokers, "host:port" each.
func (c *Cluster) Brokers() []string { return append([]string(nil), c.brokers...) }

// BrokersCSV returns the seed brokers joined by commas, the format of
// KAFKA_BROKERS.
func (c *Cluster) BrokersCSV() string { return strings.Join(c.brokers, ",") }

// Fake returns the underlying kfake cluster for fault injection (Control,
// MoveTopicPartition...), or nil on a real cluster. Tests that need it should
// skip when it is nil, so they still run against real brokers elsewhere.
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// RefusedProduce is the answer that refuses every partition of req with
// the error code, for a kfake control function (Fake) to return.
func RefusedProduce(req *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.BaseOffset = rp.Partition, code, -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// Real returns the Apache Kafka cluster behind a [KafkaReal] cluster, or
// nil. The shared broker must not be stopped or killed by a test; take a
// private one from [RealKafka] for that.
func (c *Cluster) Real() *apachekafka.Cluster { return c.real }

// Client returns a kgo client seeded with the cluster's brokers plus opts,
// closed at t's cleanup.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client on the cluster, closed at t's cleanup.
func (c *Cluster) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(c.Client(t))
}

// Topic creates a topic with the given partition count (<= 0 means the
// broker default) and returns its name: base plus a suffix unique to this
// test and call, so tests sharing a cluster never see each other's records.
// The topic is created with kadm, so it works on real clusters that do not
// auto-create topics, and Topic waits until every partition has a leader.
func (c *Cluster) Topic(t testing.TB, base string, partitions int) string {
	t.Helper()
	name := uniqueName(base, t.Name(), 249, '.', isTopicChar)
	c.CreateTopic(t, name, partitions)
	return name
}

// CreateTopic creates the topic with exactly the given name (see
// [Cluster.Topic] for unique names). An already existing topic is accepted.
func (c *Cluster) CreateTopic(t testing.TB, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.createTopic(ctx, name, partitions, pauseBetweenTopicPolls); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// pauseBetweenTopicPolls is the wait between two readiness polls of
// [Cluster.CreateTopic].
func pauseBetweenTopicPolls(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

// createTopic creates the topic and polls the broker until every partition
// has a leader, calling pause between two polls (an error from pause ends
// the wait with that error).
func (c *Cluster) createTopic(ctx context.Context, name string, partitions int, pause func(context.Context) error) error {
	// franz-go answers a metadata request from its cache for MetadataMinAge
	// (default 5 s). On Apache Kafka the first poll right after CreateTopics
	// can miss the topic, and every later poll got that cached miss: one
	// Topic call in ten took 5 s. Poll the broker, not the cache: a pause
	// longer than the 10 ms minimum age makes every poll a broker request.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	p := int32(partitions)
	if partitions <= 0 {
		p = -1
	}
	resp, err := adm.CreateTopic(ctx, p, -1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %q: %w", name, err)
	}
	for {
		td, err := adm.ListTopics(ctx, name)
		if err == nil {
			d, ok := td[name]
			if ok && d.Err == nil && len(d.Partitions) > 0 && allLed(d) {
				return nil
			}
		}
		if err := pause(ctx); err != nil {
			return fmt.Errorf("topic %q not ready: %w", name, err)
		}
	}
}

func allLed(d kadm.TopicDetail) bool {
	for _, p := range d.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// Produce writes records synchronously with acks=all and fails the test on
// any error. Records without a Topic get topic.
func (c *Cluster) Produce(t testing.TB, topic string, recs ...*kgo.Record) {
	t.Helper()
	if len(recs) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("testenv: produce to %q: %v", topic, err)
	}
}

// ReadAll returns every committed record of topic, partition by partition in
// offset order (partitions ascending). It reads with isolation level
// read_committed up to each partition's last stable offset as of the call,
// so records of aborted transactions never appear and records produced after
// the call may not. Call it once the producers under test have finished or
// committed; if a transaction is still open it waits for it, failing the
// test after 30 s.
func (c *Cluster) ReadAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := c.readCommitted(ctx, topic)
	if err != nil {
		t.Fatalf("testenv: read %q: %v", topic, err)
	}
	return recs
}

// ReadAtLeast polls [Cluster.ReadAll] until the topic holds at least n
// committed records, and returns them all. It fails the test after timeout,
// reporting how many it saw. Use it for workers that produce asynchronously.
func (c *Cluster) ReadAtLeast(t testing.TB, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := c.ReadAll(t, topic)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: topic %q has %d committed records after %v, want at least %d", topic, len(recs), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) readCommitted(ctx context.Context, topic string) ([]*kgo.Record, error) {
	acl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		return nil, err
	}
	defer acl.Close()
	adm := kadm.NewClient(acl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list last stable offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	target := map[int32]int64{}      // partition -> offset to reach
	assign := map[int32]kgo.Offset{} // partitions that hold something
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic {
			return
		}
		start := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		if o.Offset > start {
			target[o.Partition] = o.Offset
			assign[o.Partition] = kgo.NewOffset().At(start)
		}
	})
	if len(target) == 0 {
		return nil, nil
	}
	// Control records are kept so a partition whose committed data ends
	// with a transaction marker (or an aborted transaction) is seen to
	// reach its last stable offset; they are filtered out below.
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	byPart := map[int32][]*kgo.Record{}
	for len(target) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%d partition(s) short of their last stable offset: %w", len(target), ctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, open := target[r.Partition]
			if !open || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				byPart[r.Partition] = append(byPart[r.Partition], r)
			}
			if r.Offset+1 >= end {
				delete(target, r.Partition)
			}
		})
	}
	var out []*kgo.Record
	for p := int32(0); len(byPart) > 0; p++ {
		out = append(out, byPart[p]...)
		delete(byPart, p)
	}
	return out, nil
}

// uniqueName builds base + sep + sanitized(testName) + sep + random hex,
// trimmed to max bytes.
func uniqueName(base, testName string, max int, sep byte, ok func(rune) bool) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := string(sep) + hex.EncodeToString(b[:])
	tn := sanitize(testName, ok)
	room := max - len(base) - len(suffix) - 1
	if room < 0 {
		room = 0
	}
	if len(tn) > room {
		tn = tn[len(tn)-room:]
	}
	name := base
	if tn != "" {
		name += string(sep) + tn
	}
	return name + suffix
}

func sanitize(s string, ok func(rune) bool) string {
	var sb strings.Builder
	for _, r := range s {
		if ok(r) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func isTopicChar(r rune) bool {
	return r == '.' || r == '_' || r == '-' || isAlnum(r)
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Settle waits up to timeout until no transaction is pending on the topics:
// every partition's last stable offset has reached its high watermark. On
// a real broker a committed transaction's markers reach its partitions one
// by one, so a reader that saw one topic's records can read another topic
// of the same transaction a moment before its marker lands. Call Settle
// once the workers are idle, before reading the topics they wrote. It
// reports whether the topics settled; a worker that keeps a transaction
// open longer than timeout leaves them unsettled, and the caller decides
// whether that fails its test.
func (c *Cluster) Settle(t testing.TB, timeout time.Duration, topics ...string) bool {
	t.Helper()
	acl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		t.Fatalf("testenv: settle: %v", err)
	}
	defer acl.Close()
	adm := kadm.NewClient(acl)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stable, err1 := adm.ListCommittedOffsets(ctx, topics...)
		ends, err2 := adm.ListEndOffsets(ctx, topics...)
		cancel()
		pending := 0
		if err := errors.Join(err1, err2); err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if s, ok := stable.Lookup(o.Topic, o.Partition); !ok || s.Err != nil || o.Err != nil || s.Offset < o.Offset {
					pending++
				}
			})
		} else {
			pending = -1
		}
		if pending == 0 {
			return true
		}
		if time.Now().After(deadline) {
			t.Logf("testenv: topics %v still have a pending transaction after %v (%d partitions)", topics, timeout, pending)
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
