package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The chaos oracle's check of payouts.batch-status.v1 (checkBatchStatuses)
// reports each kind of problem it looks for, and nothing on a healthy
// topic: a check that cannot fail would pass every seed.
func TestBatchStatusOracleReportsEachProblem(t *testing.T) {
	ctx := context.Background()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, events.DefaultTopicBatchStatus))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	codec, err := events.NewCodec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(events.DefaultTopicBatchStatus))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	emit := func(batch string, st payout.BatchStatus) {
		t.Helper()
		n++
		bs := payout.BatchStatusChange{EventID: batch + "/" + string(st) + "/" + strings.Repeat("x", n), BatchID: batch,
			OriginAccountID: "acc", PaymentType: payout.PaymentOther, Status: st,
			OccurredAt: time.Now(), Source: payout.SourceDispatcher, TotalAmountInCents: 100, TransactionCount: 1}
		v, err := codec.AppendBatchStatusChange(nil, &bs)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(batch), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	emit("healthy", payout.BatchPending)
	emit("healthy", payout.BatchTotalPayment)
	emit("paid", payout.BatchPending)
	emit("refused-paid", payout.BatchRejected)
	emit("backwards", payout.BatchPartialPayment)
	emit("backwards", payout.BatchPending)
	emit("two-finals", payout.BatchTotalPayment)
	emit("two-finals", payout.BatchRejected)
	got := checkBatchStatuses(t, ctx, c.ListenAddrs(), codec, map[string]bool{"healthy": true, "paid": true, "refused-paid": true})
	for _, want := range []string{"batch refused-paid is REJECTED", "batch backwards went from PARTIAL_PAYMENT to PENDING",
		"batch two-finals went from TOTAL_PAYMENT to REJECTED", "batch two-finals has two final statuses"} {
		if !containsPrefix(got, want) {
			t.Errorf("no problem %q among %q", want, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d problems, want 4 (none of the healthy batches): %q", len(got), got)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
