package localrun

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
)

func newTestStack() *Stack {
	return &Stack{errs: make(chan error, 8), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// startWorker never waits for a worker that has already stopped, nor past
// its context: each case would have waited the full startTimeout (or, before
// that bound existed, forever) and then blamed a slow start.
func TestStartWorkerIsBoundedByTheWorkerAndTheContext(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name   string
		cancel bool // cancel Start's context while the worker waits
		run    func(ctx context.Context, started func()) error
		want   string
	}{
		{"returns an error before starting", false, func(context.Context, func()) error { return boom }, "ingest: boom"},
		{"returns nil before starting", false, func(context.Context, func()) error { return nil }, "ingest: exited before it started"},
		{"context ends while it starts (it returns nil)", true, func(ctx context.Context, _ func()) error {
			<-ctx.Done()
			return nil
		}, "exited before it started|not started: context canceled"},
		{"context ends while it starts (it returns ctx's error)", true, func(ctx context.Context, _ func()) error {
			<-ctx.Done()
			return ctx.Err()
		}, "ingest: context canceled|not started: context canceled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStack()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			err := s.startWorker(ctx, "ingest", tc.run)
			if err == nil || !matchesAny(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			s.wg.Wait()
		})
	}
}

// A worker stuck in its start (it ignores its context) does not hold Start
// once Start's context ends.
func TestStartWorkerReturnsOnContextWhileTheWorkerHangs(t *testing.T) {
	s := newTestStack()
	ctx, cancel := context.WithCancelCause(context.Background())
	release := make(chan struct{})
	entered := make(chan struct{})
	go func() { <-entered; cancel(errors.New("user pressed Ctrl-C")) }()
	err := s.startWorker(ctx, "tracker", func(context.Context, func()) error {
		close(entered)
		<-release
		return nil
	})
	close(release)
	s.wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "tracker: not started: user pressed Ctrl-C") {
		t.Fatalf("err = %v, want the context's cause", err)
	}
}

// Another worker's failure while one starts ends the wait; a start is not
// an error, and a second call of started is harmless.
func TestStartWorkerOtherFailureAndStart(t *testing.T) {
	s := newTestStack()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.errs <- errors.New("tracker: redis gone")
	err := s.startWorker(ctx, "ingest", func(ctx context.Context, _ func()) error { <-ctx.Done(); return nil })
	if err == nil || !strings.Contains(err.Error(), "ingest: not started: tracker: redis gone") {
		t.Fatalf("err = %v", err)
	}
	cancel()
	s.wg.Wait()

	s = newTestStack()
	ctx2, cancel2 := context.WithCancel(context.Background())
	if err := s.startWorker(ctx2, "dispatcher", func(ctx context.Context, started func()) error {
		started()
		started()
		<-ctx.Done()
		return nil
	}); err != nil {
		t.Fatalf("started worker: %v", err)
	}
	cancel2()
	s.wg.Wait()
}

func matchesAny(s, alternatives string) bool {
	for _, a := range strings.Split(alternatives, "|") {
		if strings.Contains(s, a) {
			return true
		}
	}
	return false
}

// A load run against an external cluster refuses topics that already hold
// records (an earlier run's): their batches would be counted and paid again
// by the fresh Redis and simulator, failing the reconciliation for a reason
// that is not the pipeline's.
func TestLoadRunRefusesTopicsWithRecords(t *testing.T) {
	ctx := context.Background()
	topics := events.DefaultTopics()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.Requests, topics.Batches,
		topics.BatchesDeferred, topics.Status, topics.BatchStatus, topics.RequestsDLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := checkTopicsEmpty(ctx, c.ListenAddrs(), topics); err != nil {
		t.Fatalf("empty topics refused: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.BatchStatus, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	err = checkTopicsEmpty(ctx, c.ListenAddrs(), topics)
	if err == nil || !strings.Contains(err.Error(), topics.BatchStatus+" on ") || !strings.Contains(err.Error(), "holds 1 records") {
		t.Fatalf("a topic with a record: %v", err)
	}
}

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
