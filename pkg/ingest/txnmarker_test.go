package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A marketplace that publishes its requests with a transactional producer
// leaves a commit marker after its last record on each partition. Once
// ingest has consumed everything, its committed offset stops just before
// that marker while the last stable offset is just after it, and the stall
// watchdog took the idle instance for stalled, restarting its session (and
// rebalancing its peers) every StallTimeout. Ingest keeps the markers, so
// that its commits move past them, and never reads one as a request.
func TestIdleAfterTransactionalRequestsIsNotStalled(t *testing.T) {
	f := newFixture(t, 3)
	reqs, valid, invalid := mixed(60, 0)
	cl := f.kafka.Client(t, kgo.TransactionalID("marketplace-txn"), kgo.DefaultProduceTopic(f.topics.Requests))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		v, err := f.codec.AppendRequest(nil, &reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(reqs[i].RequestID), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	e := f.engine("ingest-txn-markers", func(c *Config) { c.StallTimeout = time.Second })
	stop := f.run(e)
	o := f.read(len(reqs))
	time.Sleep(4 * time.Second) // idle: several stall timeouts pass
	stalls := testutil.ToFloat64(e.m.stalls)
	stop()
	o.assertExactlyOnce(t, valid, invalid)
	if len(o.dlq) != 0 {
		t.Fatalf("%d dead letters: a transaction's marker was read as a request", len(o.dlq))
	}
	if stalls != 0 {
		t.Fatalf("an idle instance that consumed every request restarted its Kafka session %v times (payouts_ingest_stalls_total)", stalls)
	}
}
