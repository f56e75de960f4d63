package ctl

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// statusRecord encodes a status event keyed by its requestId; Partition is
// left to the producer's default partitioner, as the workers do.
func statusRecord(t testing.TB, c *events.Codec, topic, id string, st payout.Status, at time.Time) *kgo.Record {
	sc := payout.StatusChange{EventID: payout.EventID("status", id, string(st)), RequestID: id, Status: st, AmountInCents: 123_400,
		OriginAccountID: "acct-1", OccurredAt: at, Source: payout.SourceIngest}
	v, err := c.AppendStatusChange(nil, &sc)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(id), Value: v}
}

// TestTraceReadsThePartitionOfTheKey: events produced with franz-go's
// default partitioner over 8 partitions are found by reading one partition
// only; reading any other would find nothing.
func TestTraceReadsThePartitionOfTheKey(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic(t, "status", 8)
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var recs []*kgo.Record
	for i := range 40 {
		id := fmt.Sprintf("req-%d", i)
		recs = append(recs, statusRecord(t, c, topic, id, payout.StatusBatched, now), statusRecord(t, c, topic, id, payout.StatusRejected, now))
	}
	k.Produce(t, topic, recs...)
	tool := New(testConfig(map[string]string{"KAFKA_BROKERS": k.BrokersCSV(), "TOPIC_STATUS": topic}), nil)
	parts := map[int32]bool{}
	for i := range 40 {
		id := fmt.Sprintf("req-%d", i)
		res := &TraceResult{RequestID: id, Topic: topic}
		if err := tool.traceEvents(context.Background(), res); err != nil {
			t.Fatal(err)
		}
		parts[res.Partition] = true
		if len(res.Events) != 2 || res.Events[0].Status != "BATCHED" || res.Events[1].Status != "REJECTED" {
			t.Fatalf("%s: events %+v in partition %d", id, res.Events, res.Partition)
		}
		if res.RecordsScanned >= int64(len(recs)) {
			t.Fatalf("%s: read %d records: more than its partition", id, res.RecordsScanned)
		}
	}
	if len(parts) < 4 {
		t.Fatalf("40 ids fell in %d partitions: the partition is not computed from the key", len(parts))
	}
}

// TestTraceOnALargePartition times trace on a partition of 200,000 status
// events (other requests' plus three of the traced one), read_committed
// with transaction markers in between. The figure goes to the log and to
// docs/operations.md; nothing here asserts a duration.
func TestTraceOnALargePartition(t *testing.T) {
	if testing.Short() {
		t.Skip("produces 200,000 records")
	}
	k := testenv.Kafka(t)
	topic := k.Topic(t, "status", 1)
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cl := k.Client(t, kgo.TransactionalID("ctl-bench-"+topic), kgo.DefaultProduceTopic(topic))
	ctx := context.Background()
	const total, perTxn = 200_000, 5_000
	now := time.Now()
	for n := 0; n < total; n += perTxn {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := n; i < n+perTxn; i++ {
			id := fmt.Sprintf("other-%d", i)
			st := payout.StatusBatched
			switch i {
			case 7, total / 2, total - 3:
				id = "traced-req"
				st = map[int]payout.Status{7: payout.StatusBatched, total / 2: payout.StatusSubmitted, total - 3: payout.StatusApproved}[i]
			}
			cl.Produce(ctx, statusRecord(t, c, topic, id, st, now), nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	tool := New(testConfig(map[string]string{"KAFKA_BROKERS": k.BrokersCSV(), "TOPIC_STATUS": topic}), nil)
	start := time.Now()
	res := &TraceResult{RequestID: "traced-req", Topic: topic}
	if err := tool.traceEvents(ctx, res); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var got []string
	for _, e := range res.Events {
		got = append(got, e.Status)
	}
	if strings.Join(got, ",") != "BATCHED,SUBMITTED,APPROVED" || res.RecordsScanned != total {
		t.Fatalf("events %v, %d records read, want 3 of %d", got, res.RecordsScanned, total)
	}
	t.Logf("trace on a partition of %d records (%s): %v (scan %v)", total, k.Kind(), took, res.ScanTook)
}
