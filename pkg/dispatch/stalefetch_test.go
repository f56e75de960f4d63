package dispatch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// pollStall holds the poll loop once PollRecords has taken a record of
// key from the client's buffer, before Run routes it to a worker: the
// client runs its unbuffered hooks in the polling goroutine, between the
// two. armed turns it on; held is closed once it holds, release lets go.
type pollStall struct {
	topic, key string
	armed      atomic.Bool
	once       sync.Once
	held       chan struct{}
	release    chan struct{}
}

func (s *pollStall) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if polled && s.armed.Load() && r.Topic == s.topic && string(r.Key) == s.key {
		s.once.Do(func() {
			close(s.held)
			<-s.release
		})
	}
}

// A pair of faults lined up on one partition: the poll loop has taken
// records from the client but not yet handed them to the partition's
// worker (a slow goroutine, a GC pause) when the group session is lost,
// and the same partition comes back to this replica before the loop goes
// on. The old worker, waiting on an earlier batch, stopped without a
// commit; the new one starts from the committed offset. Had the loop
// pushed the records fetched under the lost session into the new worker,
// it would work and commit them ahead of the earlier batch, whose offset
// the commit passes: a crash or a move of the partition then skips it (a
// request lost). The loop blocks rebalances while it routes a poll.
func TestFetchPolledBeforeALostSessionIsNotWorkedByTheNextWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
	first, second, third := simpleBatch("stale-first", 1), simpleBatch("stale-second", 1), simpleBatch("stale-third", 1)
	stall := &pollStall{topic: f.topics.Batches, key: second.BatchID, held: make(chan struct{}), release: make(chan struct{})}
	e := f.engine(func(c *Config) {
		c.ReadKafka = append([]kgo.Opt(nil), c.Kafka...)
		c.Kafka = append(c.Kafka, kgo.WithHooks(stall))
		c.LeaseTTL = 30 * time.Second
	})
	ctx := context.Background()
	// The first batch's lease is another replica's: its worker waits.
	if c, err := e.st.claim(ctx, "elsewhere", "e0", first.BatchID, rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("foreign claim %+v %v", c, err)
	}
	fake := f.kafka.Fake()
	td, err := f.kafka.Admin(t).ListTopics(ctx, f.topics.Batches)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var commits []int64 // the group's commits to the batches topic, in order
	fake.ControlKey(int16(kmsg.OffsetCommit), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.OffsetCommitRequest)
		if req.Group != f.group {
			return nil, nil, false
		}
		mu.Lock()
		defer mu.Unlock()
		for _, tt := range req.Topics {
			if tt.Topic == f.topics.Batches || tt.TopicID == td[f.topics.Batches].ID {
				for _, p := range tt.Partitions {
					commits = append(commits, p.Offset)
				}
			}
		}
		return nil, nil, false
	})
	worker := func() *worker {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.workers[tp{f.topics.Batches, 0}]
	}

	f.produce(f.topics.Batches, first)
	stop, _ := f.run(e)
	eventually(t, "the first batch waiting for its lease", func() bool {
		w := worker()
		return w != nil && w.queued() == 0 && testutil.ToFloat64(e.m.inflight) == 1
	})
	old := worker()
	stall.armed.Store(true)
	f.produce(f.topics.Batches, second, third)
	select {
	case <-stall.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the later batches were never polled")
	}

	// The session is lost (one heartbeat answered ILLEGAL_GENERATION); the
	// replica rejoins alone and gets the partition back.
	fake.ControlKey(int16(kmsg.Heartbeat), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.HeartbeatRequest)
		if req.Group != f.group {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.IllegalGeneration.Code
		return resp, nil, true
	})
	// The partition comes back while the poll is held, unless rebalances
	// wait for the poll loop: then it comes back once the loop goes on.
	newWorker := func() bool { w := worker(); return w != nil && w != old }
	for start := time.Now(); !newWorker() && time.Since(start) < 5*time.Second; {
		time.Sleep(20 * time.Millisecond)
	}
	close(stall.release)
	eventually(t, "the partition back", newWorker)

	// The first batch's lease is let go: everything is paid.
	if err := e.st.releaseLease(ctx, "elsewhere", first.BatchID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all three batches submitted", func() bool { return outcome(e, "submitted") >= 3 })
	eventually(t, "the last offset committed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(commits) > 0 && commits[len(commits)-1] == 3
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, o := range commits {
		if i == 0 && o != 1 || i > 0 && o < commits[i-1] {
			t.Fatalf("commits %v: an offset past the first batch was committed before it was done (a crash then skips it)", commits)
		}
	}
	f.noDoublePayment()
	f.checkLifecycles()
}
