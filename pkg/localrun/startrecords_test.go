package localrun

// The start records' topic is kept for good (retention.ms=-1) on every
// cluster the local and load runs create, and left as it is on one they
// find.

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wompi-payouts/pipeline/pkg/events"
)

// retention is the retention.ms that brokers answer for topic.
func retention(t *testing.T, brokers []string, topic string) string {
	t.Helper()
	adm, ctx, done, err := adminClient(context.Background(), brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			return *c.Value
		}
	}
	t.Fatalf("%s: no retention.ms", topic)
	return ""
}

// The local run's topics on an external cluster: the start records' topic
// is created keeping its records for good, the others with the broker's
// defaults; and on a kfake cluster the run seeds, keepStartRecords sets it.
func TestStartRecordsAreKeptForGood(t *testing.T) {
	ctx := context.Background()
	topics := events.DefaultTopics()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := ensureTopics(ctx, c.ListenAddrs(), 3, topics); err != nil {
		t.Fatal(err)
	}
	if r := retention(t, c.ListenAddrs(), topics.DispatcherStarts); r != "-1" {
		t.Errorf("created: retention.ms=%s, want -1", r)
	}
	if r := retention(t, c.ListenAddrs(), topics.Batches); r == "-1" {
		t.Errorf("%s: retention.ms=-1, want the broker's default", topics.Batches)
	}
	if err := ensureTopics(ctx, c.ListenAddrs(), 3, topics); err != nil {
		t.Fatalf("topics that exist: %v", err)
	}

	seeded, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.DispatcherStarts))
	if err != nil {
		t.Fatal(err)
	}
	defer seeded.Close()
	if r := retention(t, seeded.ListenAddrs(), topics.DispatcherStarts); r == "-1" {
		t.Fatalf("seeded: retention.ms=-1 already; the test proves nothing")
	}
	if err := keepStartRecords(ctx, seeded.ListenAddrs(), topics.DispatcherStarts); err != nil {
		t.Fatal(err)
	}
	if r := retention(t, seeded.ListenAddrs(), topics.DispatcherStarts); r != "-1" {
		t.Errorf("seeded, then kept: retention.ms=%s, want -1", r)
	}
}

// partitionsOf is how many partitions brokers report for topic.
func partitionsOf(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	adm, ctx, done, err := adminClient(context.Background(), brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		t.Fatalf("%s: %v", topic, d.Err)
	}
	return len(d.Partitions)
}

// The load run's kfake child (RunRole "kfake", through this test binary as
// RunLoad starts it): ready, with the start records' topic kept for good,
// and the other topics untouched.
func TestKfakeChildKeepsStartRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, line, err := startChild(ctx, self, "kfake", "3")
	if err != nil {
		t.Fatal(err)
	}
	defer stopChild(cmd)
	brokers := strings.Split(line, ",")
	topics := events.DefaultTopics()
	if r := retention(t, brokers, topics.DispatcherStarts); r != "-1" {
		t.Errorf("child: %s retention.ms=%s, want -1", topics.DispatcherStarts, r)
	}
	if r := retention(t, brokers, topics.Batches); r == "-1" {
		t.Errorf("child: %s retention.ms=-1, want the default", topics.Batches)
	}
	// What RunLoad then does with the child as an "external" cluster.
	if err := ensureTopics(ctx, brokers, 3, topics); err != nil {
		t.Fatalf("ensureTopics on the child: %v", err)
	}
	if err := checkTopicsEmpty(ctx, brokers, topics); err != nil {
		t.Fatalf("checkTopicsEmpty on the child: %v", err)
	}
	t.Logf("child: %s has %d partitions (ensureTopics on an empty external cluster makes 1)",
		topics.DispatcherStarts, partitionsOf(t, brokers, topics.DispatcherStarts))
}

// keepStartRecords alters incrementally: other configs of the topic stay.
func TestKeepStartRecordsIsIncremental(t *testing.T) {
	ctx := context.Background()
	topic := events.DefaultTopics().DispatcherStarts
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	adm, actx, done, err := adminClient(ctx, c.ListenAddrs())
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, err := adm.AlterTopicConfigs(actx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("12345")}}, topic); err != nil {
		t.Fatal(err)
	}
	if err := keepStartRecords(ctx, c.ListenAddrs(), topic); err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.DescribeTopicConfigs(actx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, cf := range rc.Configs {
		if cf.Value != nil {
			got[cf.Key] = *cf.Value
		}
	}
	if got["retention.ms"] != "-1" || got["max.message.bytes"] != "12345" {
		t.Fatalf("retention.ms=%q max.message.bytes=%q", got["retention.ms"], got["max.message.bytes"])
	}
	// Twice is fine (a re-run on the same cluster).
	if err := keepStartRecords(ctx, c.ListenAddrs(), topic); err != nil {
		t.Fatalf("again: %v", err)
	}
}

// A per-resource error is not lost: a topic the cluster does not have
// (auto-creation on or not) fails with UnknownTopicOrPartition, and a
// dead cluster fails within the admin timeout.
func TestKeepStartRecordsErrors(t *testing.T) {
	ctx := context.Background()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = keepStartRecords(ctx, c.ListenAddrs(), "no-such-topic")
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("missing topic: %v, want UnknownTopicOrPartition", err)
	}
	t.Logf("missing topic: %v", err)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := keepStartRecords(cctx, []string{"127.0.0.1:1"}, "x"); err == nil {
		t.Fatal("no broker: nil error")
	} else {
		t.Logf("no broker: %v", err)
	}
}

// On an external cluster whose start records' topic already exists with
// the broker's default retention, ensureTopics leaves it as it is (its doc
// says so): the dispatcher then still logs its retention error. Logged,
// not failed: altering an operator's topic is a choice.
func TestEnsureTopicsLeavesAnExistingStartsTopic(t *testing.T) {
	ctx := context.Background()
	topics := events.DefaultTopics()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.DispatcherStarts))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := ensureTopics(ctx, c.ListenAddrs(), 3, topics); err != nil {
		t.Fatal(err)
	}
	r := retention(t, c.ListenAddrs(), topics.DispatcherStarts)
	t.Logf("existing %s after ensureTopics: retention.ms=%s, %d partitions", topics.DispatcherStarts, r,
		partitionsOf(t, c.ListenAddrs(), topics.DispatcherStarts))
	if r == "-1" {
		t.Fatal("the seeded topic already kept its records; the test proves nothing")
	}
}
