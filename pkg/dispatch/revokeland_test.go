package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// holdProducer makes kfake leave unanswered every produce of one client
// while hold is set: the client whose produce to one of topics comes
// first once hold is set, told by the producer id of its record batches
// (the other clients' produces are answered). held counts the requests
// left unanswered.
func holdProducer(f *fixture, hold *atomic.Bool, held *atomic.Int32, topics ...string) {
	f.t.Helper()
	td, err := f.kafka.Admin(f.t).ListTopics(context.Background(), topics...)
	if err != nil {
		f.t.Fatal(err)
	}
	names, ids := map[string]bool{}, map[[16]byte]bool{}
	for _, t := range topics {
		names[t], ids[td[t].ID] = true, true
	}
	var pid atomic.Int64
	pid.Store(-1)
	holdMatching(f, hold, held, func(req *kmsg.ProduceRequest) bool {
		match := false
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				var rb kmsg.RecordBatch
				if rb.ReadFrom(p.Records) != nil {
					continue
				}
				if pid.Load() == -1 && (names[t.Topic] || ids[t.TopicID]) {
					pid.CompareAndSwap(-1, rb.ProducerID)
				}
				match = match || rb.ProducerID == pid.Load()
			}
		}
		return match
	})
}

// onePerPartition returns n one-request batches of amount cents, the i-th
// of which the default partitioner puts on partition i of n.
func onePerPartition(t *testing.T, prefix string, n int, amount int64) []payout.Batch {
	t.Helper()
	out := make([]payout.Batch, n)
	found := 0
	p := kgo.StickyKeyPartitioner(nil).ForTopic("batches")
	for k := 0; found < n && k < 1000; k++ {
		rid := fmt.Sprintf("%s-%d", prefix, k)
		b := batch(prefix, map[string]int64{rid: amount}, rid)
		if i := p.Partition(&kgo.Record{Key: []byte(b.BatchID)}, n); out[i].BatchID == "" {
			out[i] = b
			found++
		}
	}
	if found < n {
		t.Fatalf("no batch of %d partitions found for every partition", n)
	}
	return out
}

// Two faults: the brokers stop answering one dispatcher's produces while it
// defers batches (their DEFERRED events and deferred copies), and a second
// dispatcher joins, so some of the batches' partitions move to it. The
// first one's workers of those, stopped, give their records up as perhaps
// written, but its client runs on and sends them until the brokers answer.
// Had it let the batches go, the second dispatcher, whose daily limit has
// room, would have posted them and emitted SUBMITTED, and the first one's
// DEFERRED would have landed after those SUBMITTED. The first keeps each
// batch's lease until its records land: nothing is posted before, and
// DEFERRED comes first.
func TestRevokedWorkerKeepsTheBatchUntilItsRecordsLand(t *testing.T) {
	t.Parallel()
	l := revokeWhileUnanswered(t, 0)
	f, e1, e2 := l.f, l.e1, l.e2
	// The second dispatcher has the moved batches, and waits.
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
		if n := len(f.tap.snapshot()); n > 0 {
			t.Fatalf("%d POSTs while the first dispatcher's DEFERRED may still land", n)
		}
	}

	l.hold.Store(false)
	eventually(t, "a moved batch submitted by the second dispatcher", func() bool { return outcome(e2, "submitted") > 0 })
	eventually(t, "the first dispatcher's records answered", func() bool { return testutil.ToFloat64(e1.m.awaited) == 0 })
	if err := l.stop2(); err != nil {
		t.Fatal(err)
	}
	if err := l.stop1(); err != nil {
		t.Fatal(err)
	}
	l.check(t)
}

// The same two faults, and the brokers never answer the first dispatcher
// again. Past its limit it closes its own client, which fails the records
// it held (they never land), and its Run returns errBrokersSilent so that
// the process is restarted; the second dispatcher pays the moved batches
// once their leases run out. Without that, they waited for as long as the
// brokers stayed silent to the first.
func TestReplicaWhoseBrokersStaySilentClosesItsClient(t *testing.T) {
	t.Parallel()
	l := revokeWhileUnanswered(t, 3*time.Second)
	select {
	case <-l.done1:
	case <-time.After(30 * time.Second):
		t.Fatal("the first dispatcher still runs 30 s after its brokers stopped answering it")
	}
	if err := l.stop1(); !errors.Is(err, errBrokersSilent) {
		t.Fatalf("the first dispatcher's Run returned %v, want errBrokersSilent", err)
	}
	eventually(t, "a moved batch submitted by the second dispatcher", func() bool { return outcome(l.e2, "submitted") > 0 })
	if err := l.stop2(); err != nil {
		t.Fatal(err)
	}
	l.check(t)
}

// landing is a first dispatcher (e1) whose produces the brokers leave
// unanswered (while hold is set) after it deferred one batch per partition
// of batches, and a second (e2) that joined, so that some of those
// partitions moved to it; a worker of e1 has given its produce up.
type landing struct {
	f            *fixture
	e1, e2       *Engine
	hold         *atomic.Bool
	stop1, stop2 func() error
	done1        <-chan struct{}
}

// revokeWhileUnanswered sets a landing up; silentLimit, when not 0, is
// e1's (silentBrokersLimit).
func revokeWhileUnanswered(t *testing.T, silentLimit time.Duration) *landing {
	// Four partitions of batches and one of deferred batches: the second
	// dispatcher's share (two of five) holds at least one of batches.
	const partitions = 4
	f := newFixture(t, fixtureOpt{kfake: true, partitions: partitions})
	bs := onePerPartition(t, "landing", partitions, 600_000)
	l := &landing{f: f, hold: new(atomic.Bool)}

	l.e1 = f.engine(func(c *Config) { c.DailyLimitCents = 100_000 })
	if silentLimit != 0 {
		l.e1.silentLimit = silentLimit
	}
	l.stop1, l.done1 = f.run(l.e1)
	for start := time.Now(); len(f.kafka.ReadAll(t, f.topics.DispatcherStarts)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the first dispatcher has not started in 30 s")
		}
	}
	var held atomic.Int32
	l.hold.Store(true)
	holdProducer(f, l.hold, &held, f.topics.Status, f.topics.BatchesDeferred)
	f.produce(f.topics.Batches, bs...)
	// Every batch is deferred, and its records held.
	rdb := f.redis.Client()
	for _, b := range bs {
		eventually(t, "batch "+b.BatchID+" deferred in Redis", func() bool {
			st, _ := rdb.HGet(context.Background(), f.redis.Prefix()+"{dispatch}:batch:"+b.BatchID, "state").Result()
			return st == stateDeferred
		})
	}
	waitHeld(t, &held, "the first dispatcher's records")

	l.e2 = f.engine(func(c *Config) { c.DailyLimitCents = 100_000_000 })
	l.stop2, _ = f.run(l.e2)
	eventually(t, "a worker of the first dispatcher to give its produce up", func() bool {
		return testutil.ToFloat64(l.e1.m.awaited) > 0
	})
	return l
}

// check verifies, once both dispatchers stopped, that each moved batch was
// posted once and that no request reads DEFERRED after SUBMITTED.
func (l *landing) check(t *testing.T) {
	t.Helper()
	l.f.noDoublePayment()
	moved := outcome(l.e2, "submitted")
	if n := len(l.f.tap.snapshot()); n != moved {
		t.Fatalf("%d POSTs, want %d (the moved batches, once each)", n, moved)
	}
	submitted := 0
	order := map[string][]payout.Status{}
	for _, s := range l.f.statuses() {
		order[s.RequestID] = append(order[s.RequestID], s.Status)
	}
	for id, sts := range order {
		seenSubmitted := false
		for _, st := range sts {
			switch st {
			case payout.StatusSubmitted:
				seenSubmitted = true
				submitted++
			case payout.StatusDeferred:
				if seenSubmitted {
					t.Errorf("%s: DEFERRED after SUBMITTED on the status topic: %v", id, sts)
				}
			}
		}
	}
	if submitted != moved {
		t.Fatalf("%d SUBMITTED, want %d: %v", submitted, moved, order)
	}
}

// Two faults: Wompi refuses the batch's POST (a validation error, or a
// refusal for good that ends the batch), a lookup then finds nothing, and
// the brokers do not answer the produce of its REJECTED events, which the
// worker, drained, gives up as perhaps written. The next dispatcher read
// the batch again, looked it up, found nothing and posted it again:
// accepted, that POST paid requests whose REJECTED may be on the topic,
// and a marketplace that took REJECTED at its word and paid them some
// other way paid them twice. The refusal is recorded before the REJECTED
// go out: the next dispatcher emits the same REJECTED again and posts
// nothing.
func TestRejectedBatchIsNotPostedAgainWhenItsRejectedWereUnanswered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fault   fault
		code    string
		outcome string
		// banksDown: the next dispatcher cannot read Wompi's bank
		// directory (a third fault): it must neither post nor defer the
		// batch (a DEFERRED after its REJECTED), nor wait for the
		// directory, which it does not need to end the batch again.
		banksDown bool
		// bankGone: the batch's last request has a bank code Wompi does
		// not know (REJECTED UNKNOWN_BANK_ID by the first attempt), and
		// its duplicate-index entry is gone before the next dispatcher
		// reads the batch (run out, or marked by a recovery): that one
		// screens the batch in full, and the request stays rejected for
		// its bank, under the same eventId.
		bankGone bool
		// elsewhere: the record's refusals name none of the batch's kept
		// requests (their entries ran out and other batches took them, a
		// request the first attempt dropped now kept): nothing recorded
		// refuses this attempt's requests, so the batch is screened in
		// full (the bank directory read) and paid like any other.
		elsewhere bool
	}{
		{"validation", fault400, "VALIDATION_ERROR", "rejected", false, false, false},
		{"refused for good", fault415, string(payout.ReasonDispatchFailed), "failed", false, false, false},
		{"validation, banks down", fault400, "VALIDATION_ERROR", "rejected", true, false, false},
		{"validation, an unknown bank's entry gone", fault400, "VALIDATION_ERROR", "rejected", false, true, false},
		{"refusals of other requests", fault400, "", "submitted", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
			f.tap.fault = func(n int) fault {
				if n == 1 {
					return tc.fault
				}
				return faultNone
			}
			var hold atomic.Bool
			var held atomic.Int32
			hold.Store(true)
			holdProduce(f, f.topics.Status, &hold, &held)
			b := simpleBatch("rejected-unanswered", 2)
			var unknown string
			if tc.bankGone {
				b = simpleBatch("rejected-unanswered", 3)
				b.Transactions[2].Beneficiary.BankCode = "9999"
				unknown = b.Transactions[2].RequestID
			}

			e1 := f.engine(nil)
			stop1, _ := f.run(e1)
			f.produce(f.topics.Batches, b)
			waitHeld(t, &held, "the REJECTED events")
			if err := stop1(); err != nil {
				t.Fatal(err)
			}
			if n := testutil.ToFloat64(e1.m.unanswered); n == 0 {
				t.Fatal("no record given up unanswered")
			}

			if tc.bankGone {
				if err := f.redis.Client().Del(context.Background(), e1.st.reqKey(unknown)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.elsewhere {
				key, rdb := f.redis.Prefix()+"{dispatch}:batch:"+b.BatchID, f.redis.Client()
				for _, tx := range b.Transactions {
					if err := rdb.HDel(context.Background(), key, refusedPrefix+tx.RequestID).Err(); err != nil {
						t.Fatal(err)
					}
				}
				if err := rdb.HSet(context.Background(), key, refusedFields(map[string]refusal{"another-request": newRefusal("VALIDATION_ERROR", "injected", false)})).Err(); err != nil {
					t.Fatal(err)
				}
			}
			hold.Store(false)
			var banksDown atomic.Bool
			banksDown.Store(tc.banksDown)
			e2 := f.engine(func(c *Config) {
				c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: &noBanks{base: f.tap, down: &banksDown}}), wompi.RailConfig{})
				c.RailPatience, c.RailRetry = 300*time.Millisecond, time.Hour
			})
			stop2, _ := f.run(e2)
			eventually(t, "the batch ended by the next dispatcher", func() bool {
				return outcome(e2, tc.outcome) == 1 || len(f.tap.snapshot()) > 1
			})
			if err := stop2(); err != nil {
				t.Fatal(err)
			}
			if tc.elsewhere {
				if n := len(f.tap.snapshot()); n != 2 || outcome(e2, "submitted") != 1 {
					t.Fatalf("%d POSTs and %v submitted, want the batch posted again and submitted", n, outcome(e2, "submitted"))
				}
				return
			}
			if n := outcome(e2, "deferred"); n > 0 {
				t.Fatalf("%d batches deferred after their REJECTED", n)
			}
			if n := len(f.tap.snapshot()); n != 1 {
				t.Fatalf("%d POSTs, want 1: the batch was posted again after its REJECTED may have been written", n)
			}
			idx := byStatus(f.statuses())
			for _, tx := range b.Transactions {
				st := idx[tx.RequestID]
				if tx.RequestID == unknown {
					rejectedOnly(t, st, tx.RequestID, "UNKNOWN_BANK_ID under its eventId", func(ev payout.StatusChange) bool {
						return ev.ReasonCode != nil && *ev.ReasonCode == string(payout.ReasonUnknownBankID) &&
							ev.EventID == payout.EventID("status", tx.RequestID, "UNKNOWN_BANK", b.BatchID)
					})
					if v := f.redis.Client().Get(context.Background(), e2.st.reqKey(unknown)).Val(); v != b.BatchID+"#r" {
						t.Errorf("%s: index entry %q, want the batch's, rejected", tx.RequestID, v)
					}
					continue
				}
				rejectedOnly(t, st, tx.RequestID, tc.code+" with the refusal's message, under the batch's eventId", func(ev payout.StatusChange) bool {
					return ev.ReasonCode != nil && *ev.ReasonCode == tc.code &&
						ev.ReasonMessage != nil && strings.Contains(*ev.ReasonMessage, "injected") &&
						ev.EventID == payout.EventID("status", tx.RequestID, string(payout.StatusRejected), b.BatchID)
				})
				if n := len(st[payout.StatusDeferred]); n > 0 {
					t.Errorf("%s: %d DEFERRED after its REJECTED", tx.RequestID, n)
				}
			}
			if tc.outcome == "failed" && len(f.kafka.ReadAll(t, f.topics.RequestsDLQ)) == 0 {
				t.Error("the failed batch is not in the DLQ")
			}
		})
	}
}

// rejectedOnly checks a request's statuses (st): no SUBMITTED, and one
// REJECTED, perhaps delivered more than once (at least once, under one
// eventId), each as ok wants (want says what).
func rejectedOnly(t *testing.T, st map[payout.Status][]payout.StatusChange, rid, want string, ok func(payout.StatusChange) bool) {
	t.Helper()
	if n := len(st[payout.StatusSubmitted]); n > 0 {
		t.Errorf("%s: %d SUBMITTED after its REJECTED", rid, n)
	}
	r := st[payout.StatusRejected]
	if len(r) == 0 {
		t.Errorf("%s: no REJECTED", rid)
	}
	for _, ev := range r {
		if !ok(ev) {
			t.Errorf("%s: REJECTED %+v, want %s", rid, ev, want)
		}
	}
}

// noBanks fails Wompi's bank directory (GET /banks) while down is set.
type noBanks struct {
	base http.RoundTripper
	down *atomic.Bool
}

func (n *noBanks) RoundTrip(r *http.Request) (*http.Response, error) {
	if n.down.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/banks") {
		return nil, errors.New("test: GET /banks unreachable")
	}
	return n.base.RoundTrip(r)
}

// A recorded refusal reads back as it was written, whatever its code and
// message hold; a record written before the poison mark reads as a
// refusal.
func TestRecordedRefusalsReadBack(t *testing.T) {
	t.Parallel()
	for _, r := range []refusal{
		newRefusal("VALIDATION_ERROR", "account number is invalid", false),
		newRefusal("EXC\x1f1", "a \x1f in the message\x1fpoison", false),
		newRefusal(string(payout.ReasonDispatchFailed), "", true),
		newRefusal("", "", false),
	} {
		fs := refusedFields(map[string]refusal{"req-1": r})
		if len(fs) != 2 || fs[0] != refusedPrefix+"req-1" {
			t.Fatalf("fields %q", fs)
		}
		if got := parseRefusal(fs[1]); got != r {
			t.Errorf("%+v read back as %+v", r, got)
		}
	}
	if got := parseRefusal("EXC_1\x1fold message"); got != (refusal{code: "EXC_1", message: "old message"}) {
		t.Errorf("a record without the mark read as %+v", got)
	}
}

// showsAt is a batch rail on which the batch's payout is listed by
// reference only from at on (a POST of an earlier attempt, applied late).
type showsAt struct {
	rail.BatchRail
	at time.Time
}

func (s showsAt) FindBatches(ctx context.Context, reference string) ([]rail.Batch, error) {
	if time.Now().Before(s.at) {
		return nil, nil
	}
	return []rail.Batch{{ProviderID: "payout-late", Reference: reference, CreatedAt: s.at}}, nil
}

// A job that sent no POST of its own, on a batch an earlier attempt
// posted (firstPostAt), proves the batch absent only with a lookup begun
// RecoveryGrace after its claim: the earlier attempt's POST started before
// the claim and may land until then. Before, poison's lookup ran at once,
// found nothing, and ended with REJECTED (now recorded, for good) a batch
// Wompi then paid.
func TestLookupSettledWaitsForAnEarlierAttemptsPost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil) // RecoveryGrace 3 s
	b := simpleBatch("settled-earlier", 1)
	now := time.Now()
	e.batchRail = showsAt{BatchRail: e.batchRail, at: now.Add(time.Second)}
	ctx := context.Background()
	j := &job{e: e, b: &b, log: testLogger(), soft: ctx, hard: ctx, stop: ctx,
		firstPostAt: now.Add(-time.Second), claimedAt: now, railDeadline: now.Add(time.Minute)}
	id, err := j.lookupSettled()
	if err != nil {
		t.Fatal(err)
	}
	if id != "payout-late" {
		t.Fatalf("lookupSettled found %q: it proved absent a batch an earlier attempt's POST was still to land", id)
	}
}
