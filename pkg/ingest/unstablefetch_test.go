package ingest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two faults at the end of one window, the second one ordinary: the
// window's EndTxn(commit) is answered UNKNOWN_SERVER_ERROR while the broker
// aborted it, and commitLanded's offset fetch reaches the group
// coordinator before the abort markers reached __consumer_offsets (a real
// broker writes them after answering EndTxn, so the offsets the window's
// TxnOffsetCommit left pending are still pending for a moment). With
// RequireStable the broker answers UNSTABLE_OFFSET_COMMIT for that
// partition: kadm does not block on it (the kgo group consumer retries it,
// kadm hands it back), and commitLanded took it for "cannot be told": the
// session was replaced, a rebalance for every ingest instance, although a
// second look a moment later would have read the offsets unmoved. The
// same happens after every abort that follows a TxnOffsetCommit (a
// revocation or a failed heartbeat during End: an ordinary rebalance).
func TestUnstableOffsetsAfterAnAbortAreAskedAgain(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	fake := f.kafka.Fake()
	var unstable atomic.Bool
	var unstableSent atomic.Int32
	// The broker aborts the transaction, and its answer is lost in an
	// unknown server error.
	versions, applied := endTxnAnsweredUnknown(t, f, false, func() { unstable.Store(true) })
	reqs, valid, invalid := mixed(30, 0)
	f.produce(reqs)

	// The first fetch of all the group's offsets after it: the abort
	// markers are not written yet.
	fake.ControlKey(int16(kmsg.OffsetFetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kr.(*kmsg.OffsetFetchRequest)
		all := req.Topics == nil && (len(req.Groups) == 0 || req.Groups[0].Topics == nil)
		if !all || !req.RequireStable || !unstable.Load() {
			return nil, nil, false
		}
		unstable.Store(false)
		unstableSent.Add(1)
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Version = req.Version
		p := kmsg.NewOffsetFetchResponseTopicPartition()
		p.Partition, p.Offset, p.ErrorCode = 0, -1, kerr.UnstableOffsetCommit.Code
		if req.Version >= 8 {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group = req.Groups[0].Group
			gt := kmsg.NewOffsetFetchResponseGroupTopic()
			gt.Topic = f.topics.Requests
			gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			gp.Partition, gp.Offset, gp.ErrorCode = 0, -1, kerr.UnstableOffsetCommit.Code
			gt.Partitions = append(gt.Partitions, gp)
			g.Topics = append(g.Topics, gt)
			resp.Groups = append(resp.Groups, g)
		} else {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = f.topics.Requests
			rt.Partitions = append(rt.Partitions, p)
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})

	e := f.engine("ingest-unstable-fetch", func(c *Config) {
		c.Kafka = append(c.Kafka, versions)
		c.MaxWait, c.MaxWindow = time.Second, time.Second
	})
	stop := f.run(e)
	f.kafka.ReadAtLeast(t, f.topics.Status, len(reqs), 60*time.Second)
	time.Sleep(2 * time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status)
	o := f.read(len(reqs))
	stop()
	if applied.Load() != 1 || unstableSent.Load() != 1 {
		t.Fatalf("abort applied %d times, unstable answers %d: the test tested nothing", applied.Load(), unstableSent.Load())
	}
	o.assertExactlyOnce(t, valid, invalid)
	if e.sessions != 1 {
		t.Errorf("%d Kafka sessions: a pending offset commit's UNSTABLE_OFFSET_COMMIT replaced the session (a rebalance of the group) instead of being asked again", e.sessions)
	}
}
