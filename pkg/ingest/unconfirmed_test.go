package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two faults at the end of one window: the broker applies the window's
// EndTxn(commit) (its batches, BATCHED events and offsets are committed),
// and its answer is UNKNOWN_SERVER_ERROR (as some Redpanda versions answer,
// and as any broker answers an unexpected exception). franz-go cannot tell
// whether the commit happened: GroupTransactSession.End retries it as an
// abort, resets the consumer to the offsets its client last knew committed
// (the window's start) and returns (false, nil), "so the caller
// reprocesses". Ingest took that for a rebalance's abort and read the
// window again in the same session: every record found its own claim in
// the seen index (same partition and offset), so every request was batched
// and got BATCHED a second time, in a second committed transaction.
func TestUnconfirmedCommitIsNotReadAgain(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	versions, applied := endTxnAnsweredUnknown(t, f, true, nil)
	reqs, valid, invalid := mixed(30, 0)
	f.produce(reqs)

	e := f.engine("ingest-unconfirmed-commit", func(c *Config) {
		c.Kafka = append(c.Kafka, versions)
		c.MaxWait, c.MaxWindow = time.Second, time.Second
	})
	stop := f.run(e)
	f.kafka.ReadAtLeast(t, f.topics.Status, len(reqs), 60*time.Second)
	// Give a re-read window time to commit, if there is one.
	time.Sleep(4 * time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status)
	o := f.read(len(reqs))
	stop()
	if applied.Load() != 1 {
		t.Fatalf("the commit was applied %d times, want once: the test tested nothing", applied.Load())
	}
	o.assertExactlyOnce(t, valid, invalid)
}

// endTxnAnsweredUnknown makes the broker of f apply the first EndTxn that
// asks to commit as a commit (commit true) or as an abort, sent on another
// connection and handled normally, and answer the engine's own request
// with UNKNOWN_SERVER_ERROR; then it calls after (if not nil). It returns
// the protocol versions the engine must be capped at (a broker without
// KIP-890 part 2, Kafka 3.x or Redpanda: EndTxn does not bump the producer
// epoch, so the outcome the test applies for the engine leaves its
// producer usable) and the count of outcomes applied.
func endTxnAnsweredUnknown(t *testing.T, f *fixture, commit bool, after func()) (kgo.Opt, *atomic.Int32) {
	t.Helper()
	fake := f.kafka.Fake()
	versions := kgo.MaxVersions(kversion.V3_9_0())
	raw, err := kgo.NewClient(kgo.SeedBrokers(f.kafka.Brokers()...), versions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	var armed, inner atomic.Bool
	applied := new(atomic.Int32)
	armed.Store(true)
	fake.ControlKey(int16(kmsg.EndTxn), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kr.(*kmsg.EndTxnRequest)
		if inner.Load() || !req.Commit || !armed.Load() {
			return nil, nil, false
		}
		armed.Store(false)
		inner.Store(true)
		fake.SleepControl(func() {
			cp := *req
			cp.Commit = commit
			resp, err := cp.RequestWith(context.Background(), raw)
			if err == nil {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			if err != nil {
				t.Errorf("applying the transaction's end: %v", err)
				return
			}
			applied.Add(1)
		})
		inner.Store(false)
		if after != nil {
			after()
		}
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.Version = req.Version
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp, nil, true
	})
	return versions, applied
}
