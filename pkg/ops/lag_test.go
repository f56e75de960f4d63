package ops

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

func TestLagExporter(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic(t, "lag", 2)
	var recs []*kgo.Record
	for range 10 {
		recs = append(recs, &kgo.Record{Value: []byte("x")})
	}
	k.Produce(t, topic, recs...)
	group := "g-" + topic
	// A member commits the first two records of each partition it got.
	cl := k.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < 10 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	var commit []*kgo.Record
	for _, r := range got {
		if r.Offset < 2 { // two per partition
			commit = append(commit, r)
		}
	}
	if err := cl.CommitRecords(ctx, commit...); err != nil {
		t.Fatal(err)
	}

	reg := NewRegistry()
	l, err := NewLagExporter(reg, []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, group, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.cl.Close()
	if err := l.Update(ctx); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP payouts_consumer_group_lag Records the consumer group has not committed yet, per topic.
# TYPE payouts_consumer_group_lag gauge
payouts_consumer_group_lag{group="` + group + `",topic="` + topic + `"} ` + strconv.Itoa(10-len(commit)) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "payouts_consumer_group_lag"); err != nil {
		t.Fatal(err)
	}
}
