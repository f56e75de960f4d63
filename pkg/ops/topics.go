package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Topic is one topic a worker reads or writes, with the setting that names
// it (e.g. TOPIC_BATCHES), so that a missing topic is reported against the
// variable an operator can fix.
type Topic struct {
	Name    string
	Setting string
}

// ErrTopicMissing is wrapped by the errors of CheckTopics and KafkaTopics
// when the brokers answer that a topic does not exist. The workers never
// create topics (see docs/operations.md): producing to a missing one would
// retry UNKNOWN_TOPIC_OR_PARTITION forever.
var ErrTopicMissing = errors.New("does not exist")

// DefaultTopicWait is how long a worker waits at start for its brokers to
// answer and its topics to exist before it gives up: long enough for a
// cluster and its topic-creating job that start together with the workers
// (docker compose, a fresh namespace), short enough that a typo in a TOPIC_*
// setting stops the worker within a minute.
const DefaultTopicWait = 30 * time.Second

// TopicsError is what CheckTopics returns when a topic is missing: one line
// naming the topic, its setting and the brokers asked, e.g.
//
//	topic payouts.batches.v1 (TOPIC_BATCHES) does not exist on KAFKA_BROKERS=kafka:9092
type TopicsError struct {
	Topic   Topic
	Brokers string
}

func (e *TopicsError) Error() string {
	return fmt.Sprintf("topic %s (%s) does not exist on KAFKA_BROKERS=%s", e.Topic.Name, e.Topic.Setting, e.Brokers)
}

func (e *TopicsError) Unwrap() error { return ErrTopicMissing }

// CheckTopics asks the brokers through cl whether every topic exists and
// has a leader for each partition. While the brokers cannot be reached, or
// a topic is missing or leaderless, it asks again every second until wait
// has passed (zero: it answers after the first try); a missing topic is
// then a *TopicsError, anything else an error naming KAFKA_BROKERS. It logs
// once on log (which may be nil) when it starts waiting.
func CheckTopics(ctx context.Context, cl *kgo.Client, brokers []string, topics []Topic, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	logged := false
	for {
		err := topicsReady(ctx, cl, topics)
		if err == nil {
			return nil
		}
		var missing *missingTopic
		if errors.As(err, &missing) {
			err = &TopicsError{Topic: missing.topic, Brokers: strings.Join(brokers, ",")}
		} else {
			err = fmt.Errorf("KAFKA_BROKERS=%s: %w", strings.Join(brokers, ","), err)
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return err
		}
		if !logged && log != nil {
			log.Warn("waiting for Kafka and the topics", "wait", wait.String(), "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// KafkaTopics is the readiness dependency "kafka": the brokers answer a
// metadata request for every topic, and each partition of each has a
// leader, so a produce can go out. It asks on every check, never from the
// client's metadata cache.
func KafkaTopics(cl *kgo.Client, topics []Topic) Dependency {
	return Dependency{Name: "kafka", Check: func(ctx context.Context) error { return topicsReady(ctx, cl, topics) }}
}

type missingTopic struct{ topic Topic }

func (m *missingTopic) Error() string {
	return fmt.Sprintf("topic %s (%s) %v", m.topic.Name, m.topic.Setting, ErrTopicMissing)
}

// topicsReady sends one metadata request (never auto-creating a topic) for
// topics and checks that each exists and every partition has a leader.
func topicsReady(ctx context.Context, cl *kgo.Client, topics []Topic) error {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t.Name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	got := make(map[string]kmsg.MetadataResponseTopic, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			got[*t.Topic] = t
		}
	}
	for _, t := range topics {
		rt, ok := got[t.Name]
		if !ok || errors.Is(kerr.ErrorForCode(rt.ErrorCode), kerr.UnknownTopicOrPartition) {
			return &missingTopic{topic: t}
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return fmt.Errorf("topic %s (%s): %w", t.Name, t.Setting, err)
		}
		if len(rt.Partitions) == 0 {
			return fmt.Errorf("topic %s (%s): no partitions", t.Name, t.Setting)
		}
		for _, p := range rt.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil && !errors.Is(err, kerr.ReplicaNotAvailable) {
				return fmt.Errorf("topic %s (%s) partition %d: %w", t.Name, t.Setting, p.Partition, err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("topic %s (%s) partition %d: no leader", t.Name, t.Setting, p.Partition)
			}
		}
	}
	return nil
}
