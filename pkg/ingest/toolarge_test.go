package ingest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// bulky returns n valid requests of one account whose names and emails are
// long and random (so compression does not shrink them), so a few dozen
// make a batch of several KB.
func bulky(n, offset int) ([]payout.Request, []string) {
	rng := rand.New(rand.NewPCG(uint64(offset), 15))
	letters := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	var reqs []payout.Request
	var ids []string
	for i := offset; i < offset+n; i++ {
		r := request(i, "acc-big", 0)
		r.Beneficiary.Name = "Payee " + letters(80)
		r.Beneficiary.Email = letters(50) + strconv.Itoa(i) + "@example.co"
		reqs = append(reqs, r)
		ids = append(ids, r.RequestID)
	}
	return reqs, ids
}

// limitBatches replaces the fixture's batches topic with one whose
// max.message.bytes is limit.
func (f *fixture) limitBatches(limit int) { f.limitTopic(&f.topics.Batches, limit) }

// limitTopic replaces the fixture's topic *name with a new one whose
// max.message.bytes is limit.
func (f *fixture) limitTopic(name *string, limit int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := strconv.Itoa(limit)
	limited := *name + "-limited"
	resp, err := f.kafka.Admin(f.t).CreateTopic(ctx, 3, -1, map[string]*string{"max.message.bytes": &v}, limited)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		f.t.Fatalf("create %s: %v", limited, err)
	}
	f.kafka.CreateTopic(f.t, limited, 3) // waits for its leaders
	*name = limited
}

// checkBatchBytes fails if a committed batch value is above max.
func (f *fixture) checkBatchBytes(max int) (biggest int) {
	f.t.Helper()
	for _, r := range f.kafka.ReadAll(f.t, f.topics.Batches) {
		if len(r.Value) > max {
			f.t.Errorf("batch %s is %d bytes, above %d", r.Key, len(r.Value), max)
		}
		biggest = maxInt(biggest, len(r.Value))
	}
	return biggest
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// Issue 15 item 2, a batch closed by count mid-window: without a byte cap
// a 40-request batch of these requests is about 9 KB, the topic refuses it
// (MESSAGE_TOO_LARGE), the window aborts and re-reads the same requests
// forever. The engine reads the topic's max.message.bytes and closes
// batches below it.
func TestBatchTooLargeForTopicClosedByCount(t *testing.T) {
	f := newFixture(t, 1)
	f.limitBatches(6000)
	reqs, ids := bulky(200, 0)
	f.produce(reqs)
	e := f.engine("ingest-big-count", func(c *Config) { c.MaxTransactions, c.MaxWait, c.MaxWindow = 40, 2*time.Second, 2*time.Second })
	stop := f.run(e)
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, ids, nil)
	if got := f.checkBatchBytes(6000 - RecordOverhead); got < 4000 {
		t.Errorf("largest batch is %d bytes: the cap should fill batches near 5,488", got)
	}
}

// Issue 15 item 2, a batch closed at the window's end: the old engine chose
// to commit before End's flush reported that the topic refused the batch,
// and committed the offsets and the BATCHED events with no batch record
// (the requests were never paid).
func TestBatchTooLargeForTopicClosedAtWindowEnd(t *testing.T) {
	f := newFixture(t, 1)
	f.limitBatches(6000)
	reqs, ids := bulky(60, 0) // one batch of about 12 KB without a byte cap, closed by the window
	f.produce(reqs)
	stop := f.run(f.engine("ingest-big-end", func(c *Config) { c.MaxTransactions = 1000 }))
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, ids, nil)
	f.checkBatchBytes(6000 - RecordOverhead)
}

// A batch record the broker refuses (here kfake answers MESSAGE_TOO_LARGE to
// the first produce that carries one, though the topic's limit allows it)
// is never committed past: the window aborts, is re-read, and every request
// ends in exactly one committed batch. The old engine committed the window's
// BATCHED events and offsets without the batch.
func TestRefusedBatchRecordIsNeverCommitted(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake()) // kfake refuses the produce
	fake := f.kafka.Fake()
	td, err := f.kafka.Admin(t).ListTopics(context.Background(), f.topics.Batches)
	if err != nil {
		t.Fatal(err)
	}
	batchesID := td[f.topics.Batches].ID
	var refused atomic.Int32
	fake.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.ProduceRequest)
		hit := false
		for _, rt := range req.Topics {
			hit = hit || rt.Topic == f.topics.Batches || rt.TopicID == batchesID
		}
		if !hit || refused.Load() > 0 {
			return nil, nil, false
		}
		refused.Add(1)
		return testenv.RefusedProduce(req, kerr.MessageTooLarge.Code), nil, true
	})
	reqs, ids := bulky(30, 0)
	f.produce(reqs)
	e := f.engine("ingest-refused", func(c *Config) { c.MaxTransactions = 1000 })
	stop := f.run(e)
	o := f.read(len(reqs))
	stop()
	if refused.Load() == 0 {
		t.Fatal("no produce was refused: the test tested nothing")
	}
	o.assertExactlyOnce(t, ids, nil)
}

// BATCH_MAX_BYTES closes batches by their encoded size, and a request that
// cannot fit a batch on its own (here a recurrence description of 5 KB)
// ends with REJECTED REQUEST_TOO_LARGE instead of a batch no topic takes.
func TestBatchMaxBytesClosesBatchesAndRejectsOversizedRequest(t *testing.T) {
	f := newFixture(t, 1)
	reqs, ids := bulky(100, 0)
	huge := request(999, "acc-huge", 2)
	desc := strings.Repeat("d", 5000)
	huge.Recurring.Description = &desc
	f.produce(append(reqs, huge))
	stop := f.run(f.engine("ingest-max-bytes", func(c *Config) { c.MaxTransactions, c.MaxBatchBytes = 1000, MinBatchBytes }))
	o := f.read(len(reqs) + 1)
	stop()
	o.assertExactlyOnce(t, ids, []string{huge.RequestID})
	if c := *o.statuses[huge.RequestID][0].ReasonCode; c != string(ReasonRequestTooLarge) {
		t.Errorf("oversized request rejected for %s", c)
	}
	if len(o.batches) < 3 {
		t.Errorf("%d batches: 100 requests of about 180 bytes should need at least 3 of 4 KB", len(o.batches))
	}
	f.checkBatchBytes(MinBatchBytes)
}

// A dead-letter record too large for the DLQ topic (its max.message.bytes
// below the requests topic's) would be refused on every re-read of the
// window: it is dead-lettered without its value, the error header says so,
// and the marketplace gets REJECTED UNDECODABLE.
func TestDeadLetterTooLargeForTheDLQTopicEndsVisibly(t *testing.T) {
	f := newFixture(t, 1)
	f.limitTopic(&f.topics.RequestsDLQ, 2000)
	reqs, ids := bulky(5, 0)
	junk := make([]byte, 3000)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range junk {
		junk[i] = byte(rng.IntN(256))
	}
	junk[0] = 0xFF // no framing
	f.produce(reqs[:2], &kgo.Record{Key: []byte("req-junk"), Value: junk})
	f.produce(reqs[2:])
	stop := f.run(f.engine("ingest-dlq-too-large", nil))
	o := f.read(len(reqs) + 1)
	stop()
	o.assertExactlyOnce(t, ids, []string{"req-junk"})
	if len(o.dlq) != 1 || len(o.dlq[0].Value) != 0 || string(o.dlq[0].Key) != "req-junk" {
		t.Fatalf("DLQ = %d records, want req-junk without its value", len(o.dlq))
	}
	for _, h := range o.dlq[0].Headers {
		if h.Key == "error" && !strings.Contains(string(h.Value), "left out") {
			t.Errorf("error header %q does not say the value was left out", h.Value)
		}
	}
}
