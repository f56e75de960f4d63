package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// onRail makes b a batch of r, its payees r's.
func onRail(r singleRail, b payout.Batch) payout.Batch {
	name := string(r.name)
	b.Rail = &name
	for i := range b.Transactions {
		b.Transactions[i].Beneficiary = r.payee(i)
	}
	return b
}

// bothSingles wires the two single-payout rails into one dispatcher.
func bothSingles(rs []singleRail) func(*Config) {
	return func(c *Config) {
		c.Singles = map[rail.Name]rail.SinglePayouts{}
		for _, r := range rs {
			c.Singles[r.name] = r.client
		}
	}
}

// A requestId paid on a single-payout rail, then sent again on another
// rail after Redis lost the duplicate index, is a duplicate: the recovery
// rebuilds the index from every rail's listing, not Wompi's alone. (Before,
// the copy was paid on the second rail: a payee paid twice.)
func TestPaidOnASingleRailStaysUsedAfterARedisLoss(t *testing.T) {
	t.Parallel()
	mks := singleRails(t)
	for _, first := range []int{0, 1} {
		for _, second := range []string{"wompi", "other"} {
			rs := []singleRail{mks[0](t), mks[1](t)}
			r1 := rs[first]
			t.Run(string(r1.name)+"-then-"+second, func(t *testing.T) {
				f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
				amounts := map[string]int64{"x-1": 100_000, "x-2": 200_000, "y-1": 300_000}
				a := onRail(r1, batch("x-a", amounts, "x-1", "x-2"))
				c := batch("x-c", amounts, "x-2", "y-1")
				paidOnSecond := func(id string) int {
					le, _ := f.sim.LedgerEntry(id)
					return le.Accepted
				}
				if second == "other" {
					r2 := rs[1-first]
					c = onRail(r2, c)
					paidOnSecond = r2.sim.Accepted
				}
				e := f.engine(bothSingles(rs))
				f.produce(f.topics.Batches, a)
				stop, _ := f.run(e)
				eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
				_ = stop()
				if err := f.redis.FlushAll(context.Background()); err != nil {
					t.Fatal(err)
				}
				e = f.engine(bothSingles(rs))
				f.produce(f.topics.Batches, c)
				stop, _ = f.run(e)
				eventually(t, "batch c submitted", func() bool { return outcome(e, "submitted") == 1 })
				_ = stop()
				for _, id := range []string{"x-1", "x-2"} {
					if n := r1.sim.Accepted(id); n != 1 {
						t.Fatalf("%s paid %d times on %s, want 1", id, n, r1.name)
					}
				}
				if n := paidOnSecond("x-2"); n != 0 {
					t.Fatalf("x-2, paid on %s before the Redis loss, was paid %d more times on the second rail", r1.name, n)
				}
				if n := paidOnSecond("y-1"); n != 1 {
					t.Fatalf("y-1 paid %d times on the second rail, want 1", n)
				}
				if dlq := f.duplicateCopies(); dlq["x-2"] != c.BatchID || len(dlq) != 1 {
					t.Fatalf("DLQ copies %v: want x-2 from batch c only", dlq)
				}
				if n := testutil.ToFloat64(e.m.recoveries); n != 1 {
					t.Fatalf("recoveries %v, want 1", n)
				}
				// The request no batch claimed since reads as the rail's.
				o, found, err := RequestOwner(context.Background(), f.redis.Client(), f.redis.Prefix(), "x-1")
				if err != nil || !found || o.ListedOn != r1.name || o.BatchID != "" {
					t.Fatalf("x-1 in the index: %+v found=%v err=%v, want listed on %s", o, found, err, r1.name)
				}
			})
		}
	}
}

// A single-payout batch that paid a payee, then lost Redis before it was
// done, is redelivered: its own rail's listing marks the payee, which the
// batch takes over (not a duplicate), and its lookup adopts the payout.
func TestSingleBatchResumedAfterARedisLossPaysOnce(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
		b := singleBatch(r, "resume-"+string(r.name), 3)
		e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
		untilCrash(t, f, e, b)
		if err := f.redis.FlushAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		e2 := r.engine(f, nil)
		r.runUntilPaidOnce(t, f, e2, b)
		if dlq := f.duplicateCopies(); len(dlq) != 0 {
			t.Fatalf("DLQ copies %v: the batch's own payee taken for a duplicate", dlq)
		}
		if n := testutil.ToFloat64(e2.m.duplicates); n != 0 {
			t.Fatalf("duplicates %v, want 0", n)
		}
	})
}

// paidBeforeTheLoss pays n payees named prefix-0..n-1 on SmartFastPay
// directly, with Redis empty (no epoch): what a recovery finds listed.
func paidBeforeTheLoss(t *testing.T, prefix string, n int) (singleRail, *fixture) {
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	b := singleBatch(r, prefix, n)
	for i := range b.Transactions {
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &b.Transactions[i])); err != nil {
			t.Fatal(err)
		}
	}
	return r, f
}

// The rebuild keeps an index entry that still names a batch (a partial
// loss: that batch, redelivered, must keep its payee, and a same-rail copy
// must not take it over), marks the rest, and writes nothing once its epoch
// is no longer the one rebuilding (a recovery that lost its lock).
func TestRebuildKeepsSurvivingOwnersAndStopsWhenItsEpochIsGone(t *testing.T) {
	t.Parallel()
	r, f := paidBeforeTheLoss(t, "kept", 3)
	ctx := context.Background()
	e := r.engine(f, nil)
	rdb, key := f.redis.Client(), e.st.reqKey
	if err := rdb.Set(ctx, key("kept-0"), "b-survivor", 0).Err(); err != nil {
		t.Fatal(err)
	}
	start := func(epoch string) {
		if err := recoveryStartScript.Run(ctx, rdb, []string{e.st.epochKey()}, epoch, epochLayout, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	start("ep-1")
	if _, n, _, err := e.rebuildIndex(ctx, "ep-1", nil); err != nil || n != 3 {
		t.Fatalf("rebuild: %d indexed, %v; want 3", n, err)
	}
	want := map[string]string{"kept-0": "b-survivor", "kept-1": listedMark(r.name), "kept-2": listedMark(r.name)}
	for id, v := range want {
		if got, err := rdb.Get(ctx, key(id)).Result(); err != nil || got != v {
			t.Fatalf("%s indexed as %q (%v), want %q", id, got, err, v)
		}
	}
	// A same-rail copy does not take the survivor's payee; the survivor
	// keeps it.
	if err := rdb.HSet(ctx, e.st.epochKey(), "state", "ready").Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ batch, want string }{{"b-copy", "d"}, {"b-survivor", "k"}} {
		if _, err := e.st.claim(ctx, "w", "ep-1", c.batch, rail.Wompi); err != nil {
			t.Fatal(err)
		}
		v, news, _, _, err := e.st.dedupe(ctx, "w", "ep-1", c.batch, r.name, []string{"kept-0"}, []byte{modeKeep})
		if err != nil || string(v) != c.want || string(news) != "-" {
			t.Fatalf("batch %s: verdict %q, new %q (%v), want %q and not new", c.batch, v, news, err, c.want)
		}
	}
	// A newer recovery began: the older one's rebuild writes nothing.
	if err := rdb.Del(ctx, key("kept-1")).Err(); err != nil {
		t.Fatal(err)
	}
	start("ep-2")
	if _, _, _, err := e.rebuildIndex(ctx, "ep-1", nil); err == nil {
		t.Fatal("a rebuild whose epoch was replaced went on")
	}
	if n, err := rdb.Exists(ctx, key("kept-1")).Result(); err != nil || n != 0 {
		t.Fatalf("kept-1 written by a rebuild whose epoch was replaced (%d, %v)", n, err)
	}
}

// The rebuild reads a single rail's listing page by page: a page that
// fails is asked for again, not the whole recovery (which would start over,
// grace wait and all, at any failed page of thousands: a helper review).
func TestRebuildReadsThroughAFlakySingleListing(t *testing.T) {
	t.Parallel()
	r, f := paidBeforeTheLoss(t, "flk", 20)
	flaky := &flakyReads{base: http.DefaultTransport, share: 0.2, rng: rand.New(rand.NewPCG(9, 9))}
	r.client = r.sim.(*sfptest.Server).Client(func(c *sfp.Config) {
		c.PageSize = 3
		c.HTTPClient = &http.Client{Transport: flaky, Timeout: 2 * time.Second}
	})
	e := r.engine(f, nil)
	amounts := map[string]int64{"flk-7": 100_000, "fresh-1": 100_000}
	c := batch("flk-copy", amounts, "flk-7", "fresh-1")
	f.produce(f.topics.Batches, c)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	flaky.mu.Lock()
	gets, fails := flaky.gets, flaky.fails
	flaky.mu.Unlock()
	if fails == 0 || gets < 7 {
		t.Fatalf("the rebuild met %d failed reads in %d: the test exercised nothing", fails, gets)
	}
	if n := testutil.ToFloat64(e.m.recoveries); n != 1 {
		t.Fatalf("recoveries %v, want 1 (a failed page restarted the rebuild)", n)
	}
	if le, _ := f.sim.LedgerEntry("flk-7"); le.Accepted != 0 {
		t.Fatalf("flk-7, paid on %s, paid %d more times on Wompi", r.name, le.Accepted)
	}
	if dlq := f.duplicateCopies(); dlq["flk-7"] != c.BatchID || len(dlq) != 1 {
		t.Fatalf("DLQ copies %v: want flk-7 from the copy's batch only", dlq)
	}
}

// A replica without a rail's credentials does not run the recovery when a
// dispatcher that pays through that rail has started on this Kafka: its
// rebuild could not list what that rail paid, and a copy sent on its own
// rails would be paid again (a rolling change of credentials: a helper
// review). It waits for a replica that can; DISPATCHER_RETIRED_RAILS lets
// it go on alone.
func TestRecoveryWaitsForAReplicaThatCanListEveryRail(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	amounts := map[string]int64{"x-1": 100_000, "y-1": 100_000, "z-1": 100_000}
	a := onRail(r, batch("x-a", amounts, "x-1"))
	e := r.engine(f, nil)
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A Wompi-only replica alone: no recovery, nothing paid.
	c := batch("x-c", amounts, "x-1", "y-1")
	wompiOnly := f.engine(nil)
	f.produce(f.topics.Batches, c)
	stopW, _ := f.run(wompiOnly)
	eventually(t, "the Wompi-only replica misses smartfastpay", func() bool {
		return testutil.ToFloat64(wompiOnly.m.railsMissing.WithLabelValues(string(r.name))) == 1
	})
	time.Sleep(2 * time.Second)
	if n := testutil.ToFloat64(wompiOnly.m.recoveries); n != 0 || len(f.tap.snapshot()) != 0 {
		t.Fatalf("a replica that cannot list smartfastpay recovered (%v) or posted (%d)", n, len(f.tap.snapshot()))
	}

	// A replica that can list it joins: the recovery runs, and the copy is
	// dropped whichever replica gets batch c.
	full := r.engine(f, nil)
	stopF, _ := f.run(full)
	eventually(t, "batch c submitted", func() bool { return outcome(wompiOnly, "submitted")+outcome(full, "submitted") == 1 })
	_ = stopF()
	_ = stopW()
	if le, _ := f.sim.LedgerEntry("x-1"); le.Accepted != 0 {
		t.Fatalf("x-1, paid on %s, paid %d more times on Wompi", r.name, le.Accepted)
	}
	if le, _ := f.sim.LedgerEntry("y-1"); le.Accepted != 1 {
		t.Fatalf("y-1 paid %d times on Wompi, want 1", le.Accepted)
	}
	if n := testutil.CollectAndCount(wompiOnly.m.railsMissing); n != 0 {
		t.Fatalf("%d rails still missing on the Wompi-only replica after the recovery", n)
	}

	// The rail retired: a Wompi-only replica recovers alone.
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	retired := f.engine(func(c *Config) { c.RetiredRails = []rail.Name{r.name} })
	f.produce(f.topics.Batches, batch("z-c", amounts, "z-1"))
	stopR, _ := f.run(retired)
	eventually(t, "batch z submitted", func() bool { return outcome(retired, "submitted") == 1 })
	_ = stopR()
}

// A running dispatcher writes its record again every railsRecordEvery, so
// that a recovery still sees the rails of a process older than the topic's
// retention.
func TestStartRecordIsWrittenAgain(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{})
	e := r.engine(f, nil)
	e.railsEvery = 100 * time.Millisecond
	stop, _ := f.run(e)
	eventually(t, "three start records", func() bool { return len(f.kafka.ReadAll(t, f.topics.DispatcherStarts)) >= 3 })
	_ = stop()
	for _, rec := range f.kafka.ReadAll(t, f.topics.DispatcherStarts) {
		var sr startRecord
		if err := json.Unmarshal(rec.Value, &sr); err != nil || !slices.Equal(sr.Rails, []rail.Name{rail.Wompi, r.name}) {
			t.Fatalf("start record %s (%v): want the rails wompi and %s", rec.Value, err, r.name)
		}
	}
}

// Base options that carry hooks (kprom) need ReadKafka: a recovery's own
// client built from them would register the hook's collectors again, and
// panic.
func TestKafkaHooksNeedReadKafka(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	var cfg Config
	f.engine(func(c *Config) { cfg = *c })
	hook := kprom.NewMetrics("dispatch_test", kprom.Registerer(prometheus.NewRegistry()))
	cfg.Kafka = append(cfg.Kafka[:len(cfg.Kafka):len(cfg.Kafka)], kgo.WithHooks(hook))
	cfg.Registerer = prometheus.NewRegistry()
	if e, err := New(cfg); err == nil {
		e.Close()
		t.Fatal("hooks without ReadKafka accepted")
	}
	cfg.ReadKafka = []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...)}
	cfg.Registerer = prometheus.NewRegistry()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

// A single-payout batch that fails for good once its payees may be paid is
// not ended with REJECTED for all of them (some are paid, and no lookup by
// reference finds them): it is retried.
func TestPoisonAfterSinglePostsRejectsNobody(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{})
	e := r.engine(f, nil)
	b := singleBatch(r, "poisoned", 2)
	j := &job{e: e, b: &b, log: testLogger(), soft: context.Background(), hard: context.Background(), epoch: "e0",
		owner: "w", firstPostAt: time.Now(), keep: []int{0, 1}}
	err := j.poison(&PermanentError{Reason: payout.ReasonDispatchFailed, Err: errors.New("encode deferred batch: boom")})
	if err == nil || IsPermanent(err) {
		t.Fatalf("poison: %v, want a retryable error", err)
	}
	f.kafka.Settle(t, time.Second, f.topics.Status)
	if ss := f.statuses(); len(ss) != 0 {
		t.Fatalf("%d statuses produced for a batch whose payees may be paid: %+v", len(ss), ss)
	}
}

// The same for a single-payout batch no attempt of this epoch posted, but
// that an attempt before a Redis loss may have (its record, and the
// firstPostAt in it, went with the loss), or whose record is gone while
// the index says an attempt ran: a payee paid then and REJECTED now would
// be sent again under a new requestId, and paid twice.
func TestPoisonAfterALossRejectsNobody(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{})
	e := r.engine(f, nil)
	for _, tc := range []struct {
		name string
		set  func(j *job)
	}{
		{"read before the loss", func(j *job) {
			j.epochBegan = time.Now()
			j.src = &kgo.Record{Timestamp: time.Now().Add(-time.Minute)}
		}},
		{"record gone, indexed before", func(j *job) { j.indexedBefore = true }},
	} {
		b := singleBatch(r, "poisoned-"+strings.ReplaceAll(tc.name, " ", "-"), 2)
		j := &job{e: e, b: &b, log: testLogger(), soft: context.Background(), hard: context.Background(), epoch: "e0",
			owner: "w", keep: []int{0, 1}}
		tc.set(j)
		err := j.poison(&PermanentError{Reason: payout.ReasonDispatchFailed, Err: errors.New("encode deferred batch: boom")})
		if err == nil || IsPermanent(err) {
			t.Fatalf("%s: poison: %v, want a retryable error", tc.name, err)
		}
	}
	f.kafka.Settle(t, time.Second, f.topics.Status)
	if ss := f.statuses(); len(ss) != 0 {
		t.Fatalf("%d statuses produced for batches whose payees may be paid: %+v", len(ss), ss)
	}
}

// The replica that cannot run the recovery holds the only partition, with
// the work, and the one that can joins with nothing assigned: it runs the
// recovery all the same, because the first asks for it, and the batch is
// paid. Without the request, neither replica would ever recover.
func TestIdleReplicaRunsTheRecoveryAnotherAsksFor(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	amounts := map[string]int64{"w-1": 100_000, "w-2": 100_000}
	first := r.engine(f, nil)
	f.produce(f.topics.Batches, onRail(r, batch("w-a", amounts, "w-1")))
	stop, _ := f.run(first)
	eventually(t, "batch a submitted", func() bool { return outcome(first, "submitted") == 1 })
	_ = stop()
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}

	wompiOnly := f.engine(nil)
	f.produce(f.topics.Batches, batch("w-c", amounts, "w-2"))
	stopW, _ := f.run(wompiOnly)
	eventually(t, "the Wompi-only replica misses "+string(r.name), func() bool {
		return testutil.ToFloat64(wompiOnly.m.railsMissing.WithLabelValues(string(r.name))) == 1
	})
	full := r.engine(f, nil)
	stopF, _ := f.run(full)
	eventually(t, "batch c submitted", func() bool { return outcome(wompiOnly, "submitted")+outcome(full, "submitted") == 1 })
	_ = stopF()
	_ = stopW()
	if n := testutil.ToFloat64(full.m.recoveries); n != 1 {
		t.Fatalf("the replica that can list every rail ran %v recoveries, want 1", n)
	}
	if n := outcome(full, "submitted"); n != 0 {
		t.Fatalf("the idle replica was handed the batch (%v submitted): the test did not keep it idle", n)
	}
	f.noDoublePayment()
}

// The brokers refuse the daily rewrite of the start record (a hiccup at
// the tick). Waited out to the next day, the process had no record of the
// last day for a day: a recovery after a Redis loss then waited only the
// other processes' timings, however longer its own POSTs may take. The
// rewrite is tried again announceRetry later, and counted.
func TestRefusedStartRecordRewriteIsTriedAgainSoon(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true})
	fake := f.kafka.Fake()
	td, err := f.kafka.Admin(t).ListTopics(context.Background(), f.topics.DispatcherStarts)
	if err != nil {
		t.Fatal(err)
	}
	id := td[f.topics.DispatcherStarts].ID
	var refuse atomic.Bool
	var refused atomic.Int32
	fake.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		for _, rt := range req.Topics {
			if refuse.Load() && (rt.Topic == f.topics.DispatcherStarts || rt.TopicID == id) {
				refused.Add(1)
				return testenv.RefusedProduce(req, kerr.InvalidRecord.Code), nil, true
			}
		}
		return nil, nil, false
	})
	e := f.engine(nil)
	e.railsEvery, e.announceRetry = 10*time.Second, 100*time.Millisecond
	starts := func() int { return len(f.kafka.ReadAll(t, f.topics.DispatcherStarts)) }
	stop, _ := f.run(e)
	t.Cleanup(func() { _ = stop() })
	eventually(t, "the start record", func() bool { return starts() == 1 })
	refuse.Store(true)
	eventually(t, "the daily rewrite refused", func() bool { return refused.Load() > 0 })
	refuse.Store(false)
	healed := time.Now()
	eventually(t, "the rewrite written", func() bool { return starts() >= 2 })
	if d := time.Since(healed); d > e.railsEvery/2 {
		t.Fatalf("the refused rewrite was written %v after the brokers took writes again: at the next tick, not tried again", d)
	}
	if n := testutil.ToFloat64(e.m.startRewrites); n < 1 {
		t.Fatalf("start_record_failures_total %v, want the refused rewrite counted", n)
	}
}
