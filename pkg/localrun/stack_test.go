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

// Only a Kafka cluster and a Redis this program created (the embedded
// kfake or the load run's kfake child; the redis-server child or
// miniredis), in a run that is not --serve, are fresh to the dispatcher:
// never a cluster or a Redis the user named, which a dispatcher of an older
// version, or of another deployment, may have used.
func TestOwnsStateOnlyForItsOwnKafkaAndRedis(t *testing.T) {
	child := []string{"127.0.0.1:1"}
	for _, c := range []struct {
		name     string
		embedded bool
		redis    string
		o        Options
		want     bool
	}{
		{"embedded kfake, redis-server child", true, "redis-server", Options{}, true},
		{"embedded kfake, miniredis", true, "miniredis", Options{}, true},
		{"the load run's kfake child", false, "redis-server", Options{KafkaBrokers: child, kafkaChild: true}, true},
		{"KAFKA_BROKERS", false, "redis-server", Options{KafkaBrokers: child, ExternalKafka: true}, false},
		{"brokers given by a caller", false, "redis-server", Options{KafkaBrokers: child}, false},
		{"a child marked external", false, "redis-server", Options{KafkaBrokers: child, kafkaChild: true, ExternalKafka: true}, false},
		{"REDIS_URL with the embedded kfake", true, "REDIS_URL", Options{}, false},
		{"REDIS_URL with the load run's child", false, "REDIS_URL", Options{KafkaBrokers: child, kafkaChild: true}, false},
		{"--serve", true, "redis-server", Options{Serve: true}, false},
	} {
		if got := ownsState(c.embedded, c.redis, c.o); got != c.want {
			t.Errorf("%s: ownsState = %v, want %v", c.name, got, c.want)
		}
	}
}
