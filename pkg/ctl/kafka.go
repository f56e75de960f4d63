package ctl

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
)

// partitionOf returns the partition the workers' producers write key to in
// a topic of n partitions: franz-go's default partitioner (sticky, and for a
// keyed record murmur2 of the key, as Kafka's Java client), which every
// producer of the pipeline uses.
func partitionOf(topic string, key []byte, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Topic: topic, Key: key}, n))
}

// keyPartitions returns every partition key may have been written to in a
// topic of n partitions now: its partition at each count from n down to 1,
// each once, today's first. Partitions are only ever added, so a record
// written when the topic had fewer is in one of these.
func keyPartitions(topic string, key []byte, n int) []int32 {
	var ps []int32
	for m := n; m >= 1; m-- {
		if p := partitionOf(topic, key, m); !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return ps
}

// partitions returns the partition count of topic.
func partitions(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("kafka: list topic %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		if ok {
			return 0, fmt.Errorf("kafka: topic %s: %w", topic, d.Err)
		}
		return 0, fmt.Errorf("kafka: topic %s does not exist", topic)
	}
	return len(d.Partitions), nil
}

// scanStats counts what a scan read.
type scanStats = events.ScanStats

// scan is events.Scan.
func scan(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, key []byte, fn func(*kgo.Record) error) (scanStats, error) {
	return events.Scan(ctx, opts, topic, parts, key, fn)
}
