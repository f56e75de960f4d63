package dispatch

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Three faults: Wompi refuses the batch, the brokers do not answer the
// produce of its requests' REJECTED (the worker, drained, gives it up as
// perhaps written), and Redis then loses our state, the recorded refusal
// with it. The next dispatcher, after the recovery, finds nothing at Wompi
// by reference. It looked no further and posted the batch again: accepted,
// its requests read REJECTED then SUBMITTED. The batch's REJECTED, written
// and acknowledged before its requests', is on the batch status topic: the
// batch is ended the same way again, under the same eventIds, and nothing
// is posted.
//
// Four: Wompi fails past the dispatcher's patience when the batch is read
// again, its lookups by reference or its bank directory. The batch was
// deferred before the look, and its requests read DEFERRED after their
// REJECTED. It is looked for before it would be deferred: found, it is
// retried in place, and ended REJECTED once Wompi answers.
func TestRejectedBatchIsNotPostedAgainAfterARedisLoss(t *testing.T) {
	t.Parallel()
	t.Run("read again", func(t *testing.T) { rejectedThenLost(t, "") })
	t.Run("lookups down when read again", func(t *testing.T) { rejectedThenLost(t, "lookups") })
	t.Run("banks down when read again", func(t *testing.T) { rejectedThenLost(t, "banks") })
}

func rejectedThenLost(t *testing.T, down string) {
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true, noEpoch: true})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault400
		}
		return faultNone
	}
	var hold atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	holdProduce(f, f.topics.Status, &hold, &held)
	b := simpleBatch("rejected-lost", 2)

	e1 := f.engine(nil)
	stop1, _ := f.run(e1)
	f.produce(f.topics.Batches, b)
	waitHeld(t, &held, "the requests' REJECTED")
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	// A first start's epoch: nothing of a lost state to look for.
	if n := testutil.CollectAndCount(e1.m.refusalScans); n != 0 {
		t.Fatalf("%d refusal scans on a first start", n)
	}
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	hold.Store(false)

	var lookupsDown, banksDown atomic.Bool
	lookupsDown.Store(down == "lookups")
	banksDown.Store(down == "banks")
	e2 := f.engine(func(c *Config) {
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: &noBanks{base: &noLookups{base: f.tap, down: &lookupsDown}, down: &banksDown}}), wompi.RailConfig{})
		c.RailPatience, c.RailRetry = 300*time.Millisecond, 100*time.Millisecond
	})
	stop2, _ := f.run(e2)
	if down != "" {
		eventually(t, "the REJECTED found while Wompi fails", func() bool {
			return testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")) >= 1 || outcome(e2, "deferred") > 0
		})
		time.Sleep(time.Second) // past the patience again: retried in place
		if n := outcome(e2, "deferred"); n != 0 {
			t.Fatalf("the batch was deferred %v times after its REJECTED", n)
		}
		if n := outcome(e2, "rejected"); n != 0 {
			t.Fatal("the batch was ended before Wompi answered its lookup")
		}
		lookupsDown.Store(false)
		banksDown.Store(false)
	}
	eventually(t, "the batch ended after the recovery", func() bool {
		return outcome(e2, "rejected") == 1 || outcome(e2, "deferred") > 0 || len(f.tap.snapshot()) > 1
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1: the batch was posted again after a Redis loss, its REJECTED on the topic", n)
	}
	if n := testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")); n < 1 || (down == "" && n != 1) {
		t.Fatalf("refusal scans that found the REJECTED: %v", n)
	}
	if n := outcome(e2, "deferred"); n != 0 {
		t.Fatalf("the batch was deferred %v times after its REJECTED", n)
	}
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		if n := len(idx[tx.RequestID][payout.StatusDeferred]); n > 0 {
			t.Errorf("%s: %d DEFERRED after its REJECTED", tx.RequestID, n)
		}
		rejectedOnly(t, idx[tx.RequestID], tx.RequestID, "under the batch's eventId", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", tx.RequestID, string(payout.StatusRejected), b.BatchID)
		})
	}
}

// A REJECTED found on the topic does not end a batch whose lookup failed:
// a dispatcher's REJECTED that landed late (after an attempt's look, which
// then posted the batch) may be of a batch Wompi holds. Here Wompi holds
// it, its REJECTED is on the topic, Redis lost our state, and the batch is
// read again while Wompi's lookups fail: it is retried in place, neither
// ended nor deferred, and adopted once Wompi answers.
func TestRejectedOnTheTopicWaitsForWompisWord(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true, noEpoch: true})
	b := simpleBatch("held-then-late-rejected", 2)
	paidThenLost(t, f, nil, b)
	v, err := f.codec.AppendBatchStatusChange(nil, dispatcherRejected(f, b, "refused by an attempt whose REJECTED landed late"))
	if err != nil {
		t.Fatal(err)
	}
	f.kafka.Produce(t, f.topics.BatchStatus, &kgo.Record{Key: []byte(b.BatchID), Value: v})
	f.produce(f.topics.Batches, b) // read again

	var down atomic.Bool
	down.Store(true)
	e2 := f.engine(func(c *Config) {
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: &noLookups{base: f.tap, down: &down}}), wompi.RailConfig{})
		c.RailPatience, c.RailRetry = 300*time.Millisecond, 100*time.Millisecond
	})
	stop2, _ := f.run(e2)
	eventually(t, "the REJECTED found while the lookups fail", func() bool {
		return testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")) >= 1 || outcome(e2, "deferred")+outcome(e2, "rejected") > 0
	})
	time.Sleep(time.Second) // past the patience again: retried in place
	if d, r := outcome(e2, "deferred"), outcome(e2, "rejected"); d+r != 0 {
		t.Fatalf("before Wompi answered: %d deferred, %d rejected; want it retried in place", d, r)
	}
	down.Store(false)
	eventually(t, "the batch adopted", func() bool { return outcome(e2, "submitted")+outcome(e2, "rejected") > 0 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := outcome(e2, "rejected"); n != 0 {
		t.Fatal("a batch Wompi holds was ended REJECTED")
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
	for rid, st := range byStatus(f.statuses()) {
		for _, s := range []payout.Status{payout.StatusRejected, payout.StatusDeferred} {
			if n := len(st[s]); n > 0 {
				t.Errorf("%s: %d %s of a batch Wompi holds", rid, n, s)
			}
		}
	}
}

// paidThenLost pays b on a dispatcher's first start (mutate configures
// it), stops it, and has Redis lose our state: the next start recovers.
func paidThenLost(t *testing.T, f *fixture, mutate func(*Config), b payout.Batch) {
	t.Helper()
	e := f.engine(mutate)
	stop, _ := f.run(e)
	f.produce(f.topics.Batches, b)
	eventually(t, "the batch paid", func() bool { return outcome(e, "submitted") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// dispatcherRejected is the batch REJECTED a dispatcher writes for b.
func dispatcherRejected(f *fixture, b payout.Batch, msg string) *payout.BatchStatusChange {
	return &payout.BatchStatusChange{
		EventID: payout.EventID("batch", b.BatchID, string(payout.BatchRejected), ""), BatchID: b.BatchID,
		OriginAccountID: b.OriginAccountID, PaymentType: b.PaymentType, Schedule: b.Schedule, Status: payout.BatchRejected,
		StatusMessage: &msg, TransactionCount: int32(len(b.Transactions)), OccurredAt: f.clock.Now(), Source: payout.SourceDispatcher,
	}
}

// dispatcherRejectedPayee is the REJECTED a dispatcher writes on the status
// topic for b's i-th payee when its rail refuses it.
func dispatcherRejectedPayee(f *fixture, b payout.Batch, i int) *payout.StatusChange {
	rid := b.Transactions[i].RequestID
	code, msg := "beneficiary refused", "the rail refused the payee"
	return &payout.StatusChange{
		EventID: payout.EventID("status", rid, string(payout.StatusRejected), b.BatchID), RequestID: rid,
		BatchID: &b.BatchID, Status: payout.StatusRejected, ReasonCode: &code, ReasonMessage: &msg,
		AmountInCents: b.Transactions[i].AmountInCents, OriginAccountID: b.OriginAccountID, OccurredAt: f.clock.Now(),
		Source: payout.SourceDispatcher, Rail: b.Rail,
	}
}

// A batch is looked for after a loss when it was first written before the
// recovery began: its record's time, or its createdAt when earlier (a
// deferred copy is written anew, with the batch's createdAt).
func TestReadBeforeTheLossCountsCreatedAt(t *testing.T) {
	t.Parallel()
	began := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name             string
		written, created time.Time
		began            time.Time
		want             bool
	}{
		{"written before", began.Add(-time.Minute), time.Time{}, began, true},
		{"written after", began.Add(time.Minute), time.Time{}, began, false},
		{"a copy written after, created before", began.Add(time.Minute), began.Add(-time.Minute), began, true},
		{"created after", began.Add(time.Minute), began.Add(time.Second), began, false},
		{"a first start", began.Add(-time.Minute), began.Add(-time.Minute), time.Time{}, false},
	} {
		j := &job{e: &Engine{}, epochBegan: c.began, src: &kgo.Record{Timestamp: c.written}, b: &payout.Batch{CreatedAt: c.created}}
		if got := j.readBeforeTheLoss(); got != c.want {
			t.Errorf("%s: readBeforeTheLoss %v, want %v", c.name, got, c.want)
		}
	}
}

// noLookups fails Wompi's lookups by reference while down is set (a
// recovery's listing goes through).
type noLookups struct {
	base http.RoundTripper
	down *atomic.Bool
}

func (n *noLookups) RoundTrip(r *http.Request) (*http.Response, error) {
	if n.down.Load() && r.Method == http.MethodGet && r.URL.Query().Get("reference") != "" {
		return nil, errors.New("test: Wompi unreachable")
	}
	return n.base.RoundTrip(r)
}

// The batch's REJECTED is written, and acknowledged, before any of its
// requests' is sent (rejectedOnTopic relies on it): while the brokers
// leave the batch's unanswered, no produce carries a request's status.
func TestBatchRejectedIsWrittenBeforeItsRequests(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) { batchRejectedFirst(t, fault400) })
	t.Run("failed for good", func(t *testing.T) { batchRejectedFirst(t, fault415) })
}

func batchRejectedFirst(t *testing.T, refusal fault) {
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return refusal
		}
		return faultNone
	}
	td, err := f.kafka.Admin(t).ListTopics(context.Background(), f.topics.Status, f.topics.BatchStatus)
	if err != nil {
		t.Fatal(err)
	}
	names := func(req *kmsg.ProduceRequest) (status, batch bool) {
		for _, tp := range req.Topics {
			status = status || tp.Topic == f.topics.Status || tp.TopicID == td[f.topics.Status].ID
			batch = batch || tp.Topic == f.topics.BatchStatus || tp.TopicID == td[f.topics.BatchStatus].ID
		}
		return status, batch
	}
	var hold, statusSent atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	holdMatching(f, &hold, &held, func(req *kmsg.ProduceRequest) bool {
		status, batch := names(req)
		if status {
			statusSent.Store(true)
		}
		return status || batch
	})
	b := simpleBatch("rejected-order", 2)
	e := f.engine(nil)
	stop, _ := f.run(e)
	f.produce(f.topics.Batches, b)
	waitHeld(t, &held, "the batch's REJECTED")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if statusSent.Load() {
		t.Fatal("a request's status was sent while the batch's REJECTED was unanswered")
	}
}

// The look reads records the codec may have to fetch a schema for: one
// it cannot read while the schema registry does not answer may be the
// batch's REJECTED. The look fails and the batch is retried, never posted;
// once the registry answers, the REJECTED is read and the batch ended the
// same way. (Read as not the batch's, the batch was posted after it.)
func TestRefusalLookWaitsForTheSchemaRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true, noEpoch: true})
	srv := registrytest.NewServer()
	t.Cleanup(srv.Close)
	codec, err := events.NewCodec(ctx, events.WithRegistry(srv.URL), events.WithTopics(f.topics))
	if err != nil {
		t.Fatal(err)
	}
	f.codec = codec
	withCodec := func(c *Config) { c.Codec = codec }

	// A first start pays a batch; then Redis loses our state.
	paidThenLost(t, f, withCodec, simpleBatch("before-the-loss", 1))

	// The refused batch's REJECTED, written with a schema id the next
	// dispatcher's codec has not seen (a newer BatchStatusChanged), and
	// the batch, read again.
	b := simpleBatch("refused-before-the-loss", 2)
	js := events.Schema(events.RecordBatchStatusChange)
	i := strings.LastIndex(js, "]")
	id, err := srv.Register(f.topics.BatchStatus+"-value", js[:i]+`,{"name":"laterNote","type":["null","string"],"default":null}`+js[i:])
	if err != nil {
		t.Fatal(err)
	}
	msg := "the batch was refused"
	cur, err := codec.AppendBatchStatusChange(nil, dispatcherRejected(f, b, msg))
	if err != nil {
		t.Fatal(err)
	}
	v := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	v = append(append(v, cur[5:]...), 0) // laterNote: null
	f.kafka.Produce(t, f.topics.BatchStatus, &kgo.Record{Key: []byte(b.BatchID), Value: v})
	f.produce(f.topics.Batches, b)

	srv.FailWith(http.StatusServiceUnavailable)
	e2 := f.engine(withCodec)
	stop2, _ := f.run(e2)
	eventually(t, "looks that failed on the registry", func() bool {
		return testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("error")) >= 2 || len(f.tap.snapshot()) > 1
	})
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs while the registry was down, want 1 (the first batch's)", n)
	}
	srv.FailWith(0)
	eventually(t, "the batch ended once the registry answered", func() bool {
		return outcome(e2, "rejected") == 1 || len(f.tap.snapshot()) > 1
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1: the batch was posted after its REJECTED", n)
	}
	if n := testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")); n != 1 {
		t.Fatalf("refusal scans that found the REJECTED: %v, want 1", n)
	}
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		rejectedOnly(t, idx[tx.RequestID], tx.RequestID, "WOMPI_REJECTED with the batch's message", func(ev payout.StatusChange) bool {
			return ev.ReasonCode != nil && *ev.ReasonCode == string(payout.ReasonWompiRejected) && ev.ReasonMessage != nil && *ev.ReasonMessage == msg
		})
	}
}
