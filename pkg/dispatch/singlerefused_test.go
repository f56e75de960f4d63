package dispatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// refuseOnce answers the first POST naming refuse with a 400 (the rail
// refuses the payee; nothing is created; a later POST is accepted, as when
// the refusal's cause has passed) and every POST naming down with a 503
// (nothing created) while down is set. Everything else reaches the
// simulator.
type refuseOnce struct {
	refuse, downID string
	down           atomic.Bool
	once           sync.Once
	posts          atomic.Int32 // POSTs naming refuse
}

func (r *refuseOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	return answerPosts(func(req *http.Request, body []byte) *http.Response {
		if bytes.Contains(body, []byte(`"`+r.refuse+`"`)) {
			r.posts.Add(1)
			refused := false
			r.once.Do(func() { refused = true })
			if refused {
				return jsonAnswer(req, http.StatusBadRequest, `{"message":"beneficiary refused","code":"beneficiary refused"}`)
			}
		}
		if bytes.Contains(body, []byte(`"`+r.downID+`"`)) && r.down.Load() {
			return jsonAnswer(req, http.StatusServiceUnavailable, `{"message":"down","code":"down"}`)
		}
		return nil
	}).RoundTrip(req)
}

// through returns r with its client's calls going through tr.
func (r singleRail) through(t *testing.T, tr http.RoundTripper) singleRail {
	hc := &http.Client{Transport: tr}
	switch s := r.sim.(type) {
	case *sfptest.Server:
		cb := sink(t)
		r.client = s.Client(func(c *sfp.Config) { c.CallbackURL, c.HTTPClient = cb, hc })
	case *weptest.Server:
		r.client = s.Client(wepayout.Config{NotificationURL: sink(t), HTTPClient: hc})
	default:
		t.Fatalf("no client for %T", r.sim)
	}
	return r
}

// A payee of a single-payout batch is refused (REJECTED, final) while
// another payee's rail stays down past RailPatience, so the batch is
// deferred, its copy holding the unsettled payee only. Second fault: the
// original batch record is read again (its offset commit lost to a crash
// or a revocation after the produce). The refused payee is neither posted
// again nor given a second lifecycle; its REJECTED is the same event.
func TestRefusedPayeeNotPostedAgainWhenTheBatchIsReadAgain(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1})
		b := singleBatch(r, "refused-again", 3)
		refused, down := b.Transactions[1].RequestID, b.Transactions[2].RequestID
		tr := &refuseOnce{refuse: refused, downID: down}
		tr.down.Store(true)
		timing := func(c *Config) { c.RailPatience, c.SingleConcurrency = 500*time.Millisecond, 1 }
		e1 := r.through(t, tr).engine(f, timing)
		bb := b
		if err := e1.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		idx := byStatus(f.statuses())
		if len(idx[refused][payout.StatusRejected]) != 1 || len(idx[down][payout.StatusDeferred]) != 1 {
			t.Fatalf("first attempt: refused %v, down %v", idx[refused], idx[down])
		}
		// The original is read again, the rail healthy.
		tr.down.Store(false)
		e2 := r.through(t, tr).engine(f, timing)
		bb = b
		if err := e2.process(context.Background(), &bb, nil, testLogger()); err != nil {
			t.Fatalf("the original read again: %v", err)
		}
		idx = byStatus(f.statuses())
		if n := tr.posts.Load(); n != 1 || r.sim.Accepted(refused) != 0 {
			t.Fatalf("the refused payee was posted %d times, paid %d: a REJECTED payee posted again", n, r.sim.Accepted(refused))
		}
		if rj := idx[refused][payout.StatusRejected]; len(rj) != 2 || rj[0].EventID != rj[1].EventID ||
			len(idx[refused][payout.StatusSubmitted]) != 0 {
			t.Fatalf("refused payee's events %v: want its one REJECTED again, and nothing else", idx[refused])
		}
		if r.sim.Accepted(down) != 1 || r.sim.Accepted(b.Transactions[0].RequestID) != 1 {
			t.Fatalf("the others paid %d and %d times, want once each", r.sim.Accepted(b.Transactions[0].RequestID), r.sim.Accepted(down))
		}
		f.checkLifecycles()
	})
}

// readAgainBeforeDone pays b through r, then puts its record back to
// posting (a crash after its statuses went out, before the move to done)
// and has another engine read it again. Each attempt must end without an
// error: one that fails is retried by the worker for ever.
func readAgainBeforeDone(t *testing.T, f *fixture, r singleRail, b payout.Batch) {
	t.Helper()
	e1 := r.engine(f, nil)
	bb := b
	if err := e1.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	if err := f.redis.Client().HSet(context.Background(), e1.st.batchKey(b.BatchID), "state", statePosting, "owner", "", "lease", 0).Err(); err != nil {
		t.Fatal(err)
	}
	bb = b
	if err := r.engine(f, nil).process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("the batch read again: %v (the worker would retry it for ever)", err)
	}
}

// The same with no payee deferred: the batch is read again after its
// statuses went out but before its record moved to done (a crash in
// between; here the record is put back to posting).
func TestRefusedPayeeNotPostedAgainAfterACrashBeforeDone(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1})
		b := singleBatch(r, "refused-crash", 2)
		refused := b.Transactions[1].RequestID
		tr := &refuseOnce{refuse: refused}
		readAgainBeforeDone(t, f, r.through(t, tr), b)
		if n := tr.posts.Load(); n != 1 || r.sim.Accepted(refused) != 0 {
			t.Fatalf("the refused payee was posted %d times, paid %d", n, r.sim.Accepted(refused))
		}
		idx := byStatus(f.statuses())
		if len(idx[refused][payout.StatusSubmitted]) != 0 || len(idx[refused][payout.StatusRejected]) == 0 {
			t.Fatalf("refused payee's events %v", idx[refused])
		}
		if c := idx[refused][payout.StatusRejected][0].ReasonCode; c == nil || *c == "" {
			t.Fatalf("REJECTED without the rail's code")
		}
		f.checkLifecycles()
	})
}

// Every payee left in the batch was refused before it was read again: with
// nothing to look up or post (no rate-limit call to reserve), the attempt
// re-emits the REJECTED and ends, rather than fail and be retried for
// ever, holding its partition.
func TestEveryPayeeRefusedBeforeTheBatchIsReadAgain(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1})
		b := singleBatch(r, "all-refused", 1)
		refused := b.Transactions[0].RequestID
		tr := &refuseOnce{refuse: refused}
		readAgainBeforeDone(t, f, r.through(t, tr), b)
		if rj := byStatus(f.statuses())[refused][payout.StatusRejected]; len(rj) != 2 || rj[0].EventID != rj[1].EventID || tr.posts.Load() != 1 {
			t.Fatalf("refused payee: REJECTED %d, POSTs %d", len(rj), tr.posts.Load())
		}
	})
}

// Two faults: the rail refuses a payee (REJECTED, final, written), and the
// batch is read again (its offset commit lost to a crash, or its worker
// stopped while the brokers had not answered) after Redis lost our state,
// the refusal recorded in the batch's record with it. The rail holds no
// payout of the refused payee, so the recovery's listing indexes nothing
// for it and its lookup finds nothing: the next attempt must not post it
// again, its REJECTED already on the status topic. It is ended REJECTED
// again under the same eventId, found by one look on the status topic
// (refusal_scans_total{found="true"}).
func TestRefusedPayeeNotPostedAgainAfterARedisLoss(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
		b := singleBatch(r, "refused-lost-"+string(r.name), 2)
		refused := b.Transactions[1].RequestID
		tr := &refuseOnce{refuse: refused}
		rr := r.through(t, tr)
		// The batch's record as the worker read it, written before the
		// loss: read again, it is the same record.
		src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
		bb := b
		if err := rr.engine(f, nil).process(context.Background(), &bb, src, testLogger()); err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		if rj := byStatus(f.statuses())[refused][payout.StatusRejected]; len(rj) != 1 {
			t.Fatalf("first attempt: %d REJECTED of the refused payee on the status topic, want 1", len(rj))
		}
		if err := f.redis.FlushAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		bb = b
		e2 := rr.engine(f, nil)
		if err := e2.process(context.Background(), &bb, src, testLogger()); err != nil {
			t.Fatalf("the batch read again after the loss: %v", err)
		}
		if n := tr.posts.Load(); n != 1 || r.sim.Accepted(refused) != 0 {
			t.Errorf("the refused payee was posted %d times, paid %d: REJECTED, then paid", n, r.sim.Accepted(refused))
		}
		if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
			t.Errorf("the other payee paid %d times, want 1", n)
		}
		if n := testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")); n != 1 {
			t.Errorf("refusal scans that found the REJECTED: %v, want 1", n)
		}
		idx := byStatus(f.statuses())
		if rj := idx[refused][payout.StatusRejected]; len(rj) != 2 || rj[0].EventID != rj[1].EventID ||
			rj[1].ReasonCode == nil || rj[0].ReasonCode == nil || *rj[1].ReasonCode != *rj[0].ReasonCode {
			t.Errorf("refused payee's REJECTED %v: want the same event again", rj)
		}
		f.checkLifecycles()
	})
}

// The look on the status topic fails (here: a record of a payee's key
// whose schema the registry, down, must give): the attempt fails before
// any POST, and is retried; once the registry answers, the REJECTED is
// read and the payee ended the same way, never posted.
func TestRefusedPayeeLookWaitsForTheStatusTopic(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		ctx := context.Background()
		f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
		srv := registrytest.NewServer()
		t.Cleanup(srv.Close)
		codec, err := events.NewCodec(ctx, events.WithRegistry(srv.URL), events.WithTopics(f.topics))
		if err != nil {
			t.Fatal(err)
		}
		f.codec = codec
		// Something paid before the loss: the next start is no first one.
		before := singleBatch(r, "look-before-"+string(r.name), 1)
		if err := r.engine(f, nil).process(ctx, &before, nil, testLogger()); err != nil {
			t.Fatal(err)
		}
		b := singleBatch(r, "look-down-"+string(r.name), 2)
		refused := b.Transactions[1].RequestID
		src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
		// The payee's REJECTED, written by an attempt of the lost state
		// with a schema id the next dispatcher's codec has not seen.
		js := events.Schema(events.RecordStatusChange)
		i := strings.LastIndex(js, "]")
		id, err := srv.Register(f.topics.Status+"-value", js[:i]+`,{"name":"laterNote","type":["null","string"],"default":null}`+js[i:])
		if err != nil {
			t.Fatal(err)
		}
		rejected := dispatcherRejectedPayee(f, b, 1)
		cur, err := codec.AppendStatusChange(nil, rejected)
		if err != nil {
			t.Fatal(err)
		}
		v := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
		v = append(append(v, cur[5:]...), 0) // laterNote: null
		f.kafka.Produce(t, f.topics.Status, &kgo.Record{Key: []byte(refused), Value: v})
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Fatal(err)
		}

		tr := &refuseOnce{refuse: refused}
		rr := r.through(t, tr)
		// The recovery reads the status topic too (indexRejected), with a
		// codec of its own: it fails while the REJECTED cannot be decoded,
		// and is retried, never skipped.
		codec0, err := events.NewCodec(ctx, events.WithRegistry(srv.URL), events.WithTopics(f.topics))
		if err != nil {
			t.Fatal(err)
		}
		srv.FailWith(http.StatusServiceUnavailable)
		e0 := rr.engine(f, func(c *Config) { c.Codec = codec0 })
		if err := e0.announce(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e0.recover(ctx, nil); err == nil || !strings.Contains(err.Error(), "TOPIC_STATUS") {
			t.Fatalf("the recovery while the status topic could not be read: %v, want its error", err)
		}
		if _, ready, err := e0.st.epoch(ctx); err != nil || ready {
			t.Fatalf("the epoch was made ready by a recovery that could not read the status topic (%v)", err)
		}
		srv.FailWith(0)
		if _, _, err := e0.ensureEpoch(ctx); err != nil {
			t.Fatal(err)
		}
		// The batch's look, with a codec that has not seen the schema.
		srv.FailWith(http.StatusServiceUnavailable)
		e2 := rr.engine(f, nil)
		bb := b
		if err := e2.process(ctx, &bb, src, testLogger()); err == nil {
			t.Fatal("the attempt ended while the status topic could not be read")
		}
		if n := testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("error")); n != 1 {
			t.Fatalf("refusal scans that failed: %v, want 1", n)
		}
		if n := tr.posts.Load() + int32(r.sim.Accepted(b.Transactions[0].RequestID)); n != 0 {
			t.Fatalf("%d POSTs while the look failed, want none", n)
		}
		srv.FailWith(0)
		bb = b
		if err := e2.process(ctx, &bb, src, testLogger()); err != nil {
			t.Fatalf("once the registry answered: %v", err)
		}
		if n := tr.posts.Load(); n != 0 || r.sim.Accepted(refused) != 0 {
			t.Fatalf("the refused payee was posted %d times, paid %d", n, r.sim.Accepted(refused))
		}
		if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
			t.Fatalf("the other payee paid %d times, want 1", n)
		}
		rejectedOnly(t, byStatus(f.statuses())[refused], refused, "under its eventId, with its code", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", refused, string(payout.StatusRejected), b.BatchID) &&
				ev.ReasonCode != nil && *ev.ReasonCode == *rejected.ReasonCode
		})
	})
}

// Two faults: a transaction of another producer of the status topic
// (ingest writes its BATCHED and REJECTED there in transactions) is open on
// the refused payee's partition when the rail refuses the payee, its
// REJECTED landing after the transaction's first record; and the batch is
// read again after Redis lost our state while that transaction is still
// open (an ingest that hangs or crashed mid-transaction keeps it open up to
// its transaction timeout; a hanging transaction for good). The look must
// still find the REJECTED (the dispatcher writes it outside any
// transaction, so it is readable at once): read up to the last stable
// offset only, it ended before the REJECTED, found nothing, and the payee
// was posted again and paid after its final REJECTED.
func TestRefusedPayeeFoundPastAnOpenTransaction(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		ctx := context.Background()
		f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
		b := singleBatch(r, "refused-open-txn-"+string(r.name), 2)
		refused := b.Transactions[1].RequestID
		// An ingest-like producer's transaction, open on the partition the
		// refused payee's statuses go to (any key placed there would do).
		txn := f.kafka.Client(t, kgo.TransactionalID("ingest-like-"+f.topics.Status), kgo.DefaultProduceTopic(f.topics.Status),
			kgo.TransactionTimeout(5*time.Minute))
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		batched, err := f.codec.AppendStatusChange(nil, &payout.StatusChange{
			EventID: payout.EventID("status", refused, string(payout.StatusBatched), b.BatchID), RequestID: refused,
			BatchID: &b.BatchID, Status: payout.StatusBatched, AmountInCents: b.Transactions[1].AmountInCents,
			OriginAccountID: b.OriginAccountID, OccurredAt: f.clock.Now(), Source: payout.SourceIngest, Rail: b.Rail,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, &kgo.Record{Key: []byte(refused), Value: batched}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		tr := &refuseOnce{refuse: refused}
		rr := r.through(t, tr)
		src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
		bb := b
		if err := rr.engine(f, nil).process(ctx, &bb, src, testLogger()); err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Fatal(err)
		}
		bb = b
		e2 := rr.engine(f, nil)
		err = e2.process(ctx, &bb, src, testLogger())
		// The transaction ends (aborted, as a crashed producer's is), so
		// that the topic can be read whole.
		if aerr := txn.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			t.Fatal(aerr)
		}
		if err != nil {
			t.Fatalf("the batch read again after the loss: %v", err)
		}
		if n := tr.posts.Load(); n != 1 || r.sim.Accepted(refused) != 0 {
			t.Errorf("the refused payee was posted %d times, paid %d: REJECTED, then paid", n, r.sim.Accepted(refused))
		}
		if n := testutil.ToFloat64(e2.m.refusalScans.WithLabelValues("true")); n != 1 {
			t.Errorf("refusal scans that found the REJECTED: %v, want 1", n)
		}
		rejectedOnly(t, byStatus(f.statuses())[refused], refused, "under its eventId", func(ev payout.StatusChange) bool {
			return ev.EventID == payout.EventID("status", refused, string(payout.StatusRejected), b.BatchID)
		})
	})
}
