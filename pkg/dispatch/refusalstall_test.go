package dispatch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Three faults: Wompi refuses every batch of one dispatcher (a lookup then
// finds nothing), the brokers leave that dispatcher's produce of the
// batches' REJECTED unanswered, and Redis loses our state, the recorded
// refusals with it. A second dispatcher joins and takes some of the
// partitions; the first one's workers of those give their produces up,
// but its client runs on and sends them until the brokers answer. The
// second one recovers, finds nothing at Wompi nor on the batch status
// topic, and posts the moved batches: accepted. The first one's REJECTED
// then landed after their PENDING: a batch REJECTED on the topic, and
// paid. Its lease gone with Redis, the first one closes its client before
// a recovery can end, so that nothing it gave up lands after it.
func TestStalledRejectedDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	f, bs := stalledUngatedAcrossALoss(t, "refusal-stall", stall{refused: true, held: func(f *fixture) string { return f.topics.BatchStatus }})
	rejected := map[string]bool{}
	for _, s := range f.batchStatuses() {
		if s.Status == payout.BatchRejected {
			rejected[s.BatchID] = true
		}
	}
	ledger := f.sim.BatchLedger()
	for _, b := range bs {
		if rejected[b.BatchID] && ledger[b.BatchID].Accepted > 0 {
			t.Errorf("batch %s is REJECTED on the batch status topic, and Wompi accepted it %d times",
				b.BatchID, ledger[b.BatchID].Accepted)
		}
	}
}

// The same three faults with the first dispatcher's own budget refusing
// the batches before any POST (review): their requests' DEFERRED, which no
// status gate holds (nothing was posted), landed after the SUBMITTED of
// the second dispatcher's POST, a request's status going back.
func TestStalledDeferredDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	f, _ := stalledUngatedAcrossALoss(t, "defer-stall", stall{first: func(c *Config) { c.DailyLimitCents = 100_000 },
		held: func(f *fixture) string { return f.topics.Status }})
	if err := payout.CheckLifecycles(f.statuses()); err != nil {
		t.Error(err)
	}
}

// The same three faults on the single-payout rails (review): the rail
// refuses each payee of the first dispatcher (a 400, nothing created), its
// REJECTED, which no status gate holds, is left unanswered, and Redis loses
// the recorded refusals. The second dispatcher's look for the payees'
// REJECTED on the status topic finds nothing (it has not landed), their
// lookups find nothing, and it pays them. Had the first one's REJECTED
// landed then, a payee would be REJECTED on the status topic, and paid.
func TestStalledSingleRejectedDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f, bs := stalledUngatedAcrossALoss(t, "single-stall-"+string(r.name), stall{refused: true, single: &r,
			held: func(f *fixture) string { return f.topics.Status }})
		idx := byStatus(f.statuses())
		paid := 0
		for _, b := range bs {
			rid := b.Transactions[0].RequestID
			n := r.sim.Accepted(rid)
			paid += n
			if len(idx[rid][payout.StatusRejected]) > 0 && n > 0 {
				t.Errorf("%s is REJECTED on the status topic, and %s paid it %d times", rid, r.name, n)
			}
		}
		if paid == 0 {
			t.Fatal("the second dispatcher paid no moved payee: the faults did not line up")
		}
	})
}

// Four faults (review of dropRefusedBefore, whose ungated mark no test
// held): a single-payout rail refuses a batch's payee (a 400, nothing
// created), and its REJECTED fails for good (the status topic refuses the
// write): the refusal is recorded in the batch's record, its REJECTED is
// nowhere. The batch is read again (its offset was not committed) on the
// next day, whose budget has no room: it is deferred whole, and the refused
// payee, moved to the drops (dropRefusedBefore), has its REJECTED sent
// again, through no status gate. The brokers leave that produce
// unanswered, the worker is stopped (it gives the record up; the client
// still sends it) and Redis loses our state, the refusal and the lease with
// it. The next attempt, after the recovery, finds no REJECTED of the payee
// on the status topic (payeesRejectedOnTopic), looks it up absent and pays
// it: SUBMITTED. Had the first replica's client stayed open (the job not
// marked ungated), the REJECTED it gave up would land after that
// SUBMITTED: the payee paid, yet REJECTED (final) on the status topic, so
// the ledger counts the money as still owed and the marketplace may send
// the payee a new request: paid twice. The lost lease closes the client
// before a recovery can end (holdLease).
func TestStalledRefusedDropDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		ctx := context.Background()
		f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true})
		b := singleBatch(r, "drop-stall-"+string(r.name), 1)
		refused := b.Transactions[0].RequestID
		src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
		tr := &refuseOnce{refuse: refused}
		rr := r.through(t, tr)

		var refuse atomic.Bool
		refuseProduce(t, f, &refuse)
		refuse.Store(true)
		bb := b
		if err := rr.engine(f, nil).process(ctx, &bb, src, testLogger()); err == nil {
			t.Fatal("the first attempt ended while the status topic refused its records")
		}
		refuse.Store(false)
		key := f.redis.Prefix() + "{dispatch}:batch:" + b.BatchID
		if v, _ := f.redis.Client().HGet(ctx, key, refusedPrefix+refused).Result(); v == "" {
			t.Fatal("the first attempt recorded no refusal of the payee")
		}

		// The batch read again on the next day, its budget full; the
		// brokers leave its REJECTED unanswered.
		loc := rail.Location(r.name)
		f.clock.Set(payout.DayIn(f.clock.Now(), loc).Next().StartIn(loc).Add(time.Hour))
		var hold atomic.Bool
		var nheld atomic.Int32
		hold.Store(true)
		holdProducer(f, &hold, &nheld, f.topics.Status)
		e2 := rr.engine(f, func(c *Config) { c.DailyLimitCents = 50_000 })
		stop, cancel := context.WithCancel(ctx)
		defer cancel()
		ended := make(chan error, 1)
		bb2 := b
		go func() { ended <- e2.process(stop, &bb2, src, testLogger()) }()
		waitHeld(t, &nheld, "the read-again attempt's REJECTED")
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Fatal(err)
		}
		cancel() // the worker stops: its record given up unanswered
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			t.Fatal("the read-again attempt has not given its record up 30 s after its worker stopped")
		}

		// The next attempt, after the recovery.
		bb = b
		if err := rr.engine(f, nil).process(ctx, &bb, src, testLogger()); err != nil {
			t.Fatalf("the attempt after the loss: %v", err)
		}
		if n := r.sim.Accepted(refused); n != 1 {
			t.Fatalf("the payee paid %d times after the loss, want 1: the faults did not line up", n)
		}
		// The guard, checked before the hold is let go: a request kfake
		// held for a closed client is dropped, which a real broker that
		// had read it would not do (stalledUngatedAcrossALoss).
		if e2.silenced.Load() == nil {
			t.Error("the read-again attempt's client was still open when the payee was paid after the loss: " +
				"the REJECTED it gave up may land after that SUBMITTED")
		}
		hold.Store(false)
		eventually(t, "the read-again attempt's record answered or failed", func() bool {
			return testutil.ToFloat64(e2.m.awaited) == 0
		})
		time.Sleep(time.Second) // its record, if sent, lands
		if rj := byStatus(f.statuses())[refused][payout.StatusRejected]; len(rj) > 0 {
			t.Errorf("%s is REJECTED on the status topic, and %s paid it %d times", refused, r.name, r.sim.Accepted(refused))
		}
		f.checkLifecycles()
	})
}

// stall chooses stalledUngatedAcrossALoss's faults.
type stall struct {
	// first changes the first dispatcher's Config (nil for none).
	first func(*Config)
	// refused: the rail answers the first dispatcher's POSTs 400.
	refused bool
	// held names the topic whose produces the brokers leave unanswered.
	held func(*fixture) string
	// single: the batches go to this single-payout rail (nil: Wompi).
	single *singleRail
}

// secondGrace is the second dispatcher's RecoveryGrace in
// stalledUngatedAcrossALoss: the first one's close must come before that
// recovery ends, and its revoke, its give-up and its next renewal take a
// few seconds on a loaded machine (a 3 s grace failed once under CI
// load). Without the close on a lost lease, the client would close only
// at silentBrokersLimit (2 min), far past it.
func secondGrace(c *Config) { c.RecoveryGrace = 8 * time.Second }

// stalledUngatedAcrossALoss lines the three faults up: the first
// dispatcher (its Config changed by s.first; s.refused: the rail refuses
// its POSTs) ends one batch per partition with records no status gate
// holds, produced to s.held, which the brokers leave unanswered; Redis is
// flushed; a second dispatcher joins, takes some of the partitions and
// pays their batches; then the brokers answer.
func stalledUngatedAcrossALoss(t *testing.T, prefix string, s stall) (*fixture, []payout.Batch) {
	const partitions = 4
	f := newFixture(t, fixtureOpt{kfake: true, partitions: partitions, ownRedis: true})
	var bs []payout.Batch
	// The engines are made where they start: one made earlier misses
	// what happens in between (a second made before the first runs keeps
	// the batches from being refused).
	var mk1, mk2 func() *Engine
	if r := s.single; r != nil {
		bs = onePerPartition(t, prefix, partitions, 100_000)
		name := string(r.name)
		for i := range bs {
			bs[i].Rail = &name
			bs[i].Transactions[0].Beneficiary = r.payee(i)
		}
		first := *r
		if s.refused {
			first = r.through(t, refuseAll(prefix))
		}
		mk1 = func() *Engine { return first.engine(f, s.first) }
		mk2 = func() *Engine { return r.engine(f, secondGrace) }
	} else {
		bs = onePerPartition(t, prefix, partitions, 600_000)
		if s.refused {
			f.tap.fault = func(n int) fault {
				if n <= partitions {
					return fault400
				}
				return faultNone
			}
		}
		mk1 = func() *Engine { return f.engine(s.first) }
		mk2 = func() *Engine { return f.engine(secondGrace) }
	}
	refused, held := s.refused, s.held
	e1 := mk1()
	stop1, done1 := f.run(e1)
	for start := time.Now(); len(f.kafka.ReadAll(t, f.topics.DispatcherStarts)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the first dispatcher has not started in 30 s")
		}
	}
	var hold atomic.Bool
	var nheld atomic.Int32
	hold.Store(true)
	holdProducer(f, &hold, &nheld, held(f))
	f.produce(f.topics.Batches, bs...)
	if refused {
		rdb := f.redis.Client()
		for _, b := range bs {
			eventually(t, "batch "+b.BatchID+" refused in Redis", func() bool {
				v, _ := rdb.HGet(context.Background(), f.redis.Prefix()+"{dispatch}:batch:"+b.BatchID,
					refusedPrefix+b.Transactions[0].RequestID).Result()
				return v != ""
			})
		}
	}
	waitHeld(t, &nheld, "the first dispatcher's ungated records")
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}

	e2 := mk2()
	stop2, _ := f.run(e2)
	eventually(t, "a moved batch ended by the second dispatcher", func() bool {
		return outcome(e2, "submitted")+outcome(e2, "rejected") > 0
	})
	// The guard: the first one closed its client when its lease was lost,
	// before the second one's recovery could end and its POST follow. The
	// hold is let go once the close is done (Run returned): a request the
	// broker held for a closed connection is then dropped, which a real
	// broker that had read it would not do, so the order is checked here.
	if e1.silenced.Load() == nil {
		t.Error("the first dispatcher had not closed its client when the second one had paid a moved batch: " +
			"records it gave up unanswered may land after that POST")
	} else {
		eventually(t, "the first dispatcher's client closed", func() bool {
			select {
			case <-done1:
				return true
			default:
				return false
			}
		})
	}
	hold.Store(false)
	eventually(t, "the first dispatcher's records answered or failed", func() bool {
		select {
		case <-done1:
			return true
		default:
			return testutil.ToFloat64(e1.m.awaited) == 0
		}
	})
	time.Sleep(time.Second) // the first one's last records, if any, land
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	_ = stop1()
	f.noDoublePayment()
	return f, bs
}

// refuseAll answers 400 to every POST whose body holds naming (the rail
// refuses the payee; nothing is created) and lets every other call (a
// token's POST too) reach the simulator.
func refuseAll(naming string) http.RoundTripper {
	return answerPosts(func(req *http.Request, body []byte) *http.Response {
		if !bytes.Contains(body, []byte(naming)) {
			return nil
		}
		return jsonAnswer(req, http.StatusBadRequest, `{"message":"beneficiary refused","code":"beneficiary refused"}`)
	})
}

// answerPosts is a transport that reads each POST's body and gives it to
// answer: its answer is the call's, or, when nil, the call goes on to the
// simulator. Every other call goes on as it is.
type answerPosts func(req *http.Request, body []byte) *http.Response

func (a answerPosts) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil {
		return http.DefaultTransport.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	if res := a(req, body); res != nil {
		return res, nil
	}
	clone := req.Clone(req.Context())
	clone.Body, clone.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return http.DefaultTransport.RoundTrip(clone)
}
