package dispatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// holdProduce makes kfake leave every produce to topic unanswered while
// hold is set: each attempt is read, then its connection is closed without
// an answer, and franz-go sends it again (held counts the attempts). An
// idempotent producer never fails such a record on its own: its outcome
// stays unknown until an attempt is answered or the client closes.
func holdProduce(f *fixture, topic string, hold *atomic.Bool, held *atomic.Int32) {
	f.t.Helper()
	td, err := f.kafka.Admin(f.t).ListTopics(context.Background(), topic)
	if err != nil {
		f.t.Fatal(err)
	}
	id := td[topic].ID
	holdMatching(f, hold, held, func(req *kmsg.ProduceRequest) bool {
		for _, t := range req.Topics {
			// Recent produce versions name the topic by its id only.
			if t.Topic == topic || t.TopicID == id {
				return true
			}
		}
		return false
	})
}

// holdMatching leaves every produce request that match reports unanswered
// while hold is set (holdProduce); held counts them.
func holdMatching(f *fixture, hold *atomic.Bool, held *atomic.Int32, match func(*kmsg.ProduceRequest) bool) {
	fake := f.kafka.Fake()
	fake.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if !hold.Load() || !match(kr.(*kmsg.ProduceRequest)) {
			return nil, nil, false
		}
		held.Add(1)
		return nil, errors.New("test: the produce's connection closes unanswered"), true
	})
}

// waitHeld waits until a produce is held.
func waitHeld(t *testing.T, held *atomic.Int32, what string) {
	t.Helper()
	for start := time.Now(); held.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no produce of %s reached the broker", what)
		}
	}
}

// unanswered is a dispatcher running with a batch of three requests whose
// SUBMITTED events the brokers leave unanswered (held counts the requests).
type unanswered struct {
	f    *fixture
	e    *Engine
	b    payout.Batch
	hold atomic.Bool
	held atomic.Int32
	stop func() error
	done <-chan struct{}
}

func startUnanswered(t *testing.T, prefix string) *unanswered {
	u := &unanswered{f: newFixture(t, fixtureOpt{kfake: true, partitions: 1}), b: simpleBatch(prefix, 3)}
	u.hold.Store(true)
	holdProduce(u.f, u.f.topics.Status, &u.hold, &u.held)
	u.e = u.f.engine(nil)
	u.stop, u.done = u.f.run(u.e)
	u.f.produce(u.f.topics.Batches, u.b)
	waitHeld(t, &u.held, "the status topic")
	return u
}

// Two faults: the brokers stop answering the SUBMITTED events' produce,
// and the dispatcher is told to drain. The worker waited for the produce's
// answer, which never came and which only the client's close (after the
// drain) would have ended: the process hung until killed. It now gives the
// records up as perhaps written and the drain ends; the next dispatcher
// finishes the batch without posting it again.
func TestDrainWhileTheBrokersDoNotAnswerEnds(t *testing.T) {
	t.Parallel()
	u := startUnanswered(t, "unanswered")
	f, e, b, hold, held, stop := u.f, u.e, u.b, &u.hold, &u.held, u.stop

	drained := make(chan error, 1)
	go func() { drained <- stop() }()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("the drain has not ended 45 s after it began, with %d produce requests unanswered: the worker waits for an answer only the client's close gives", held.Load())
	}
	if n := testutil.ToFloat64(e.m.unanswered); n == 0 {
		t.Fatal("no record counted as unanswered")
	}

	// The brokers answer again: the next dispatcher emits the batch's
	// statuses once the status keys' lease (70 s) has run out, and posts
	// nothing.
	hold.Store(false)
	e2 := f.engine(nil)
	stop2, _ := f.run(e2)
	for start := time.Now(); outcome(e2, "submitted") == 0; time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 150*time.Second {
			t.Fatal("the next dispatcher has not submitted the batch in 150 s")
		}
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	f.noDoublePayment()
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1", n)
	}
	// The statuses given up are perhaps on the topic: they are never
	// written again (a late copy could follow a later status), and the
	// payout is in the hand-off, which the tracker polls to emit what
	// follows (README: SUBMITTED may be missing from a path).
	if n := testutil.ToFloat64(e2.m.lateSkipped); n != float64(len(b.Transactions)) {
		t.Errorf("%v SUBMITTED skipped by the next dispatcher, want the %d perhaps written", n, len(b.Transactions))
	}
	for id, st := range byStatus(f.statuses()) {
		if n := len(st[payout.StatusSubmitted]); n > 1 {
			t.Errorf("%s has %d SUBMITTED", id, n)
		}
	}
	open, err := e2.handoff.Open(context.Background())
	if err != nil || len(open) != 1 {
		t.Fatalf("the hand-off follows %v (err %v), want the batch's payout: nothing would poll it", open, err)
	}
}

// gatedJobOnKFake is a job of a fresh engine on kfake whose status gate's
// lease is lease, with the produces to the status topic held while hold
// is set; stop is the job's (its worker's) stop.
func gatedJobOnKFake(t *testing.T, lease time.Duration, hold *atomic.Bool, held *atomic.Int32, stop context.Context) (*fixture, *job) {
	t.Helper()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
	holdProduce(f, f.topics.Status, hold, held)
	e := f.engine(nil)
	e.gate = track.NewGate(f.redis.Client(), f.redis.Prefix(), lease)
	e.gate.SetLossGrace(-1)
	ctx := context.Background()
	since, err := e.gate.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f, &job{e: e, b: &payout.Batch{BatchID: "gated"}, owner: "gated-job", log: testLogger(),
		soft: ctx, hard: ctx, stop: stop, statusSince: since}
}

// produceSubmitted runs produceGated for one request's SUBMITTED in the
// background, then lets the job go as process does when the job returns
// (the batch has no record: the lease's renewals fail, and the status keys
// are still settled).
func produceSubmitted(f *fixture, j *job, rid string) <-chan error {
	errc := make(chan error, 1)
	rec := &kgo.Record{Topic: f.topics.Status, Key: []byte(rid), Value: []byte("x")}
	go func() {
		err := j.produceGated([]*kgo.Record{rec}, []track.GateItem{{ID: rid, To: string(payout.StatusSubmitted), Ref: "tx-" + rid}}, nil)
		j.letGo()
		errc <- err
	}()
	return errc
}

// approvedAfter waits until the tracker's gate grants rid's APPROVED
// (the dispatcher's key is no longer held) and returns the status it
// follows.
func approvedAfter(t *testing.T, f *fixture, j *job, rid string, within time.Duration) string {
	t.Helper()
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	tracker.SetLossGrace(-1)
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		tk, err := tracker.Begin(context.Background(), j.statusSince, []track.GateItem{{ID: rid, To: string(payout.StatusApproved), Ref: "tx-" + rid}})
		if err != nil {
			t.Fatal(err)
		}
		if tk.Verdicts[0] != track.GateBusy {
			if tk.Verdicts[0] != track.GateOurs {
				t.Fatalf("APPROVED of %s: verdict %v", rid, tk.Verdicts[0])
			}
			return tk.Previous[0]
		}
		if time.Since(start) > within {
			return "busy"
		}
	}
}

// A running worker whose produce the brokers do not answer keeps waiting:
// were it to give the records up and try the batch again, the first
// records could land after the second try's and after later statuses.
// Only a stopped worker gives up (see the revoke below).
func TestRunningWorkerWaitsForAnUnansweredProduce(t *testing.T) {
	t.Parallel()
	var hold atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	f, j := gatedJobOnKFake(t, 2*time.Second, &hold, &held, context.Background())
	j.e.produceTimeout = time.Second
	errc := produceSubmitted(f, j, "req-running")
	waitHeld(t, &held, "the status topic")
	select {
	case err := <-errc:
		t.Fatalf("a running worker gave its produce up: %v", err)
	case <-time.After(time.Second + unansweredGrace + 2*time.Second):
	}
	hold.Store(false)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("the produce answered late: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the produce has not ended 90 s after the brokers answered again")
	}
	if prev := approvedAfter(t, f, j, "req-running", 5*time.Second); prev != string(payout.StatusSubmitted) {
		t.Fatalf("APPROVED follows %q, want SUBMITTED", prev)
	}
}

// A revoke while the client keeps running (a rebalance): the stopped
// worker gives its produce up, but the records are still the producer's
// and land once the brokers answer. The status keys must stay held until
// then, beyond the gate's lease: freed after one lease, as after the
// client's close, they let the tracker put APPROVED on the topic before
// the SUBMITTED that lands later.
func TestRevokedWorkerHoldsTheStatusKeysUntilItsRecordsLand(t *testing.T) {
	t.Parallel()
	var hold atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	const lease = 2 * time.Second
	stop, revoke := context.WithCancel(context.Background())
	f, j := gatedJobOnKFake(t, lease, &hold, &held, stop)
	errc := produceSubmitted(f, j, "req-revoked")
	waitHeld(t, &held, "the status topic")
	revokedHoldsUntilLanded(t, f, j, "req-revoked", payout.StatusSubmitted, revoke, errc, &hold, lease)
}

// revokedHoldsUntilLanded revokes the worker of j while its produce of
// rid's status want is unanswered (errc its outcome), and checks that
// the tracker's APPROVED waits for the key, held beyond the gate's lease,
// until the brokers answer (hold cleared), and then follows want.
func revokedHoldsUntilLanded(t *testing.T, f *fixture, j *job, rid string, want payout.Status,
	revoke func(), errc <-chan error, hold *atomic.Bool, lease time.Duration) {
	t.Helper()
	revoke()
	select {
	case err := <-errc:
		if !errors.Is(err, errUnanswered) {
			t.Fatalf("the stopped worker's produce of the %s: %v, want errUnanswered", want, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the stopped worker has not given its produce of the %s up in 30 s", want)
	}
	if prev := approvedAfter(t, f, j, rid, 3*lease); prev != "busy" {
		t.Fatalf("APPROVED granted (after %q) while the %s may still land", prev, want)
	}
	hold.Store(false)
	if prev := approvedAfter(t, f, j, rid, 90*time.Second); prev != string(want) {
		t.Fatalf("APPROVED follows %q once the %s landed, want %s", prev, want, want)
	}
}

// The same unanswered produce, and the engine is closed meanwhile (a
// worker's shutdown path; a rebalance runs the same revoke). The client's
// Close leaves the group, whose revoke callback waits for the worker,
// which waited for the answer only that Close would have ended.
func TestCloseWhileTheBrokersDoNotAnswerReturns(t *testing.T) {
	t.Parallel()
	u := startUnanswered(t, "unanswered-close")
	e, held, done := u.e, &u.held, u.done

	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(45 * time.Second):
		t.Fatalf("Close has not returned in 45 s with %d produce requests unanswered: its revoke waits for a worker that waits for it", held.Load())
	}
	// Close returns once what waited for the given-up records is done:
	// the closed client failed them.
	if n := testutil.ToFloat64(e.m.awaited); n != 0 {
		t.Errorf("produces_awaited %v after Close, want 0", n)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run has not returned 30 s after Close")
	}
}

// The brokers do not answer the start record's produce, and the
// dispatcher is stopped while it starts.
func TestStopWhileTheStartRecordIsUnansweredEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
	var hold atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	holdProduce(f, f.topics.DispatcherStarts, &hold, &held)
	e := f.engine(nil)
	stop, _ := f.run(e)
	waitHeld(t, &held, "the starts topic")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case <-stopped:
	case <-time.After(45 * time.Second):
		t.Fatalf("the dispatcher has not stopped 45 s after it was told to, its start record unanswered (%d requests held)", held.Load())
	}
}

// Two faults: the brokers do not answer a running worker's SUBMITTED
// events, and its batch's lease is lost meanwhile (taken by another
// owner). The lost lease ends the job's own context, not its worker's: the
// produce keeps waiting for its answer rather than give the records up and
// let the batch be tried again before they land.
func TestLostLeaseDoesNotGiveAnUnansweredProduceUp(t *testing.T) {
	t.Parallel()
	u := startUnanswered(t, "unanswered-lease")
	f, e, b := u.f, u.e, u.b
	rdb := f.redis.Client()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, f.redis.Prefix()+"{dispatch}:batch:"+b.BatchID,
		"owner", "another-replica/1", "lease", now.Add(3*time.Second).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	// The next renewal (a third of the 2 s lease) finds the lease lost;
	// a produce given up would be, unansweredGrace later.
	time.Sleep(renewEvery(2*time.Second) + unansweredGrace + 3*time.Second)
	if n := testutil.ToFloat64(e.m.unanswered); n != 0 {
		t.Fatalf("%v records given up by a running worker whose lease was lost: they may land after the batch's next attempt", n)
	}
	u.hold.Store(false)
	eventually(t, "the batch submitted", func() bool { return outcome(e, "submitted") > 0 })
	f.noDoublePayment()
}

// The SUBMITTED of a request is written, then its PENDING (the listing's,
// in a second produce) goes unanswered, and the worker is revoked. The
// given-up PENDING may still land: the status key stays held until it has,
// so the tracker's APPROVED never comes before it.
func TestRevokedWorkerHoldsTheStatusKeysUntilItsPendingLands(t *testing.T) {
	t.Parallel()
	var hold atomic.Bool
	var held atomic.Int32
	const lease = 2 * time.Second
	stop, revoke := context.WithCancel(context.Background())
	f, j := gatedJobOnKFake(t, lease, &hold, &held, stop)
	j.e.betweenProduces = func() { hold.Store(true) } // the SUBMITTED went through
	const rid = "req-pending"
	sub := &kgo.Record{Topic: f.topics.Status, Key: []byte(rid), Value: []byte("submitted")}
	pending := &kgo.Record{Topic: f.topics.Status, Key: []byte(rid), Value: []byte("pending")}
	errc := make(chan error, 1)
	go func() {
		_, err := j.produceGatedThen([]*kgo.Record{sub}, []*kgo.Record{pending},
			[]track.GateItem{{ID: rid, To: string(payout.StatusPending), Via: string(payout.StatusSubmitted), Ref: "tx-" + rid}}, nil)
		j.letGo()
		errc <- err
	}()
	waitHeld(t, &held, "the PENDING")
	revokedHoldsUntilLanded(t, f, j, rid, payout.StatusPending, revoke, errc, &hold, lease)
}
