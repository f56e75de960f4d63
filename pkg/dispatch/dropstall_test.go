package dispatch

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Four faults (review of the drops' REJECTED, which no status gate holds):
// a first attempt reads a bank table that lacks the payees' bank (Wompi
// dropped it for a while, or answered a partial list), so screening drops
// them (UNKNOWN_BANK_ID); the brokers leave their REJECTED unanswered, the
// worker is stopped (it gives the records up; the client still sends
// them) and Redis loses our state, the index of those payees with it. The
// next attempt, after the recovery, reads the whole table: nothing in the
// index, nothing on the status topic (the REJECTED has not landed), so it
// keeps the payees, looks the batch up absent and posts it: SUBMITTED.
// Had the first attempt's client stayed open, its REJECTED would land
// after that SUBMITTED: a payee paid, yet REJECTED (final) on the status
// topic, which the marketplace may send again under a new requestId: paid
// twice. The lost lease closes the client before a recovery can end
// (holdLease), but only for a job marked ungated.
//
// without1007 answers GET /banks with a table that lists Banco de Bogotá
// (1001) under the simulator's bankId, and not Bancolombia (1007): unlike
// bankless, the payees it keeps can be posted.
type without1007 struct{ base http.RoundTripper }

func (b without1007) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/banks") {
		return jsonAnswer(req, http.StatusOK,
			`[{"id":"`+wompitest.BankID("1001")+`","name":"BANCO DE BOGOTA","code":"1001"}]`), nil
	}
	return b.base.RoundTrip(req)
}

// dropStall chooses stallDrops' faults.
type dropStall struct {
	// prep changes the fixture before anything runs (nil for nothing).
	prep func(*fixture)
	// first and next change the Config of the first attempt (without1007
	// already set) and of the next one (nil for nothing).
	first, next func(*Config)
	// posts is how many POSTs the first attempt sends.
	posts int
	// open: the first attempt's client is to stay open (its drops'
	// REJECTED must land).
	open bool
}

// stallDrops runs the first attempt until its status records are held,
// flushes Redis, stops its worker, then runs the next attempt with the
// whole bank table. It checks that no payee Wompi holds is REJECTED on
// the status topic, nor any payee of a copy the next attempt deferred
// (that copy, when one is, is run on the next day, to show the payment),
// and returns the fixture.
func stallDrops(t *testing.T, b payout.Batch, s dropStall) *fixture {
	ctx := context.Background()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1, ownRedis: true})
	if s.prep != nil {
		s.prep(f)
	}
	src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}

	var hold atomic.Bool
	var nheld atomic.Int32
	hold.Store(true)
	holdProducer(f, &hold, &nheld, f.topics.Status)
	e1 := f.engine(func(c *Config) {
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: without1007{base: f.tap}}), wompi.RailConfig{})
		if s.first != nil {
			s.first(c)
		}
	})
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := make(chan error, 1)
	b1 := b
	go func() { ended <- e1.process(stop, &b1, src, testLogger()) }()
	waitHeld(t, &nheld, "the first attempt's statuses")
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // the worker stops: its records given up unanswered
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the first attempt has not given its records up 30 s after its worker stopped")
	}
	if n := len(f.tap.snapshot()); n != s.posts {
		t.Fatalf("the first attempt sent %d POSTs, want %d: the faults did not line up", n, s.posts)
	}

	// The next attempt, after the recovery, with the whole bank table.
	b2 := b
	if err := f.engine(s.next).process(ctx, &b2, src, testLogger()); err != nil {
		t.Fatalf("the attempt after the loss: %v", err)
	}
	// The guard, checked before the hold is let go: a request kfake
	// held for a closed client is dropped, which a real broker that had
	// read it would not do (stalledUngatedAcrossALoss).
	switch closed := e1.silenced.Load() != nil; {
	case !closed && !s.open:
		t.Error("the first attempt's client was still open when the next attempt had written its statuses: " +
			"the REJECTED it gave up may land after them")
	case closed && s.open:
		t.Error("the first attempt's client was closed: the REJECTED it gave up, its payees' only one, is lost")
	}
	hold.Store(false)
	eventually(t, "the first attempt's records answered or failed", func() bool {
		return testutil.ToFloat64(e1.m.awaited) == 0
	})
	time.Sleep(time.Second) // its records, if sent, land
	if cs := deferredCopies(f); len(cs) > 0 {
		// Deferred by the next attempt (the first one's copy was given
		// up with its statuses): a payee of its copy REJECTED on the
		// status topic is posted when the copy is read on the next day.
		c := cs[len(cs)-1]
		idx := byStatus(f.statuses())
		for _, tx := range c.Transactions {
			if len(idx[tx.RequestID][payout.StatusRejected]) > 0 {
				t.Errorf("%s is REJECTED on the status topic, and waits in the deferred copy", tx.RequestID)
			}
		}
		if !t.Failed() {
			// Its run would wait out the status keys the first
			// attempt's closed client left held (one gate lease).
			return f
		}
		loc := rail.Location(rail.Wompi)
		f.clock.Set(payout.DayIn(f.clock.Now(), loc).Next().StartIn(loc).Add(time.Hour))
		if err := f.engine(nil).process(ctx, &c, &kgo.Record{Topic: f.topics.BatchesDeferred, Key: []byte(c.BatchID),
			Timestamp: f.clock.Now()}, testLogger()); err != nil {
			t.Fatalf("the deferred copy: %v", err)
		}
	}
	paid := 0
	for _, tx := range b.Transactions {
		if le, ok := f.sim.LedgerEntry(tx.RequestID); ok {
			paid += le.Accepted
		}
	}
	if paid == 0 {
		t.Fatal("Wompi holds no payee of the batch after the loss: the faults did not line up")
	}
	f.noDoublePayment()
	f.noneRejectedWhilePaid(t, b, "an unknown bank's REJECTED given up unanswered landed after the loss")
	f.checkLifecycles()
	return f
}

// Every payee of the batch dropped for its bank: the batch is ended
// without a POST (nothingToPay), its REJECTED alone.
func TestStalledUnbankedNothingToPayDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	stallDrops(t, simpleBatch("drop-stall-none", 2), dropStall{})
}

// One payee dropped for its bank, the other posted and refused for now
// (EXC_008): the batch is deferred after a POST (deferBatch), its DEFERRED
// through the status gate, the drop's REJECTED beside them through none.
func TestStalledUnbankedDropOfAPostedDeferralDoesNotLandAfterARedisLoss(t *testing.T) {
	t.Parallel()
	b := simpleBatch("drop-stall-deferred", 2)
	b.Transactions[1].Beneficiary.BankCode = "1001" // still listed
	stallDrops(t, b, dropStall{prep: func(f *fixture) {
		f.tap.fault = func(n int) fault {
			if n == 1 {
				return faultBalance400
			}
			return faultNone
		}
	}, posts: 1, next: func(c *Config) { c.DailyLimitCents = 50_000 }})
}

// One payee dropped for its bank, the other posted and accepted: the drop's
// REJECTED goes out beside the SUBMITTED (finish), through no gate. Its
// landing late is the truth, and the payee's only final status: the next
// attempt, which keeps the payee (the whole bank table), finds the batch
// at Wompi without it, adopts it and never posts it again, emitting
// nothing for the payee (foundAfterLoss). So finish leaves the job
// unmarked: closed by its lost lease, the first attempt's client would
// lose that REJECTED, and the payee would stay BATCHED for good.
func TestStalledUnbankedDropOfASubmittedBatchLandsAfterARedisLoss(t *testing.T) {
	t.Parallel()
	b := simpleBatch("drop-stall-submitted", 2)
	b.Transactions[1].Beneficiary.BankCode = "1001" // still listed
	f := stallDrops(t, b, dropStall{posts: 1, open: true})
	dropped := b.Transactions[0].RequestID
	if le, ok := f.sim.LedgerEntry(dropped); ok && le.Accepted > 0 {
		t.Fatalf("%s, dropped for its bank, is in a batch Wompi holds", dropped)
	}
	if rj := byStatus(f.statuses())[dropped][payout.StatusRejected]; len(rj) == 0 {
		t.Errorf("%s, in no payout, has no REJECTED on the status topic", dropped)
	}
}
