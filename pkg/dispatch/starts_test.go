package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

func TestOnlyStart(t *testing.T) {
	t.Parallel()
	const topic = "starts"
	ends := func(offsets ...int64) kadm.ListedOffsets {
		m := map[int32]kadm.ListedOffset{}
		for p, o := range offsets {
			m[int32(p)] = kadm.ListedOffset{Topic: topic, Partition: int32(p), Offset: o}
		}
		return kadm.ListedOffsets{topic: m}
	}
	broken := ends(1, 0)
	broken[topic][1] = kadm.ListedOffset{Topic: topic, Partition: 1, Err: errors.New("OFFSET_NOT_AVAILABLE")}
	for _, c := range []struct {
		name string
		mine startPos
		ends kadm.ListedOffsets
		want bool
	}{
		{"ours alone, one partition", startPos{0, 0}, ends(1), true},
		{"ours alone, three partitions", startPos{2, 0}, ends(0, 0, 1), true},
		{"another before ours", startPos{0, 1}, ends(2), false},
		{"another after ours, same partition", startPos{0, 0}, ends(2), false},
		{"another on another partition", startPos{0, 0}, ends(1, 1), false},
		{"ours not where the offsets say", startPos{1, 0}, ends(1, 0), false},
		{"one record, not ours (the topic re-created since)", startPos{0, 1}, ends(1), false},
		{"a partition without an offset", startPos{0, 0}, broken, false},
		{"no such topic", startPos{0, 0}, kadm.ListedOffsets{}, false},
		{"a partition whose leader was not asked", startPos{0, 0}, ends(1), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(c.name, "a partition whose leader") {
				err = errors.New("partition 1: NOT_LEADER_OR_FOLLOWER") // kadm's shard error; partition 1 left out of ends
			}
			got, why := onlyStart(c.mine, topic, c.ends, err)
			if got != c.want || got == (why != "") {
				t.Fatalf("onlyStart = %v (%q), want %v", got, why, c.want)
			}
		})
	}
}

// startRecords reads the fixture's start topic.
func (f *fixture) startRecords() []startRecord {
	f.t.Helper()
	var out []startRecord
	for _, r := range f.kafka.ReadAll(f.t, f.topics.DispatcherStarts) {
		var s startRecord
		if err := json.Unmarshal(r.Value, &s); err != nil {
			f.t.Fatalf("start record %q: %v", r.Value, err)
		}
		if string(r.Key) != s.Instance+"/"+s.Boot {
			f.t.Fatalf("start record key %q, value %+v", r.Key, s)
		}
		out = append(out, s)
	}
	return out
}

// A dispatcher that starts on an empty Redis, with no other dispatcher
// ever started on its Kafka, pays at once: the grace (an hour here) is for
// POSTs other processes may have in flight, and there are none.
func TestFirstStartSkipsTheGrace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	e := f.engine(func(c *Config) { c.RecoveryGrace = time.Hour })
	f.produce(f.topics.Batches, simpleBatch("first", 3))
	stop, _ := f.run(e)
	eventually(t, "the batch submitted without waiting an hour", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.m.recoveries); n != 1 {
		t.Fatalf("recoveries %v, want 1", n)
	}
	if got := f.startRecords(); len(got) != 1 || got[0].Boot != e.boot || got[0].Instance != e.cfg.InstanceID {
		t.Fatalf("start records %+v, want this process's only", got)
	}
	f.noDoublePayment()
}

// Another dispatcher has started on this Kafka: it may have claimed, and
// have a POST in flight, against a Redis that was then lost. The grace is
// waited.
func TestAnotherStartRecordMeansGrace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	f.kafka.Produce(t, f.topics.DispatcherStarts, &kgo.Record{Key: []byte("other/1"), Value: []byte(`{"instance":"other","boot":"1"}`)})
	const grace = 2500 * time.Millisecond
	e := f.engine(func(c *Config) { c.RecoveryGrace = grace })
	f.produce(f.topics.Batches, simpleBatch("second", 3))
	start := time.Now()
	stop, _ := f.run(e)
	eventually(t, "the recovery started", func() bool { return testutil.ToFloat64(e.m.recoveries) == 1 })
	if n := testutil.ToFloat64(e.m.firstStarts); n != 0 {
		t.Fatalf("first starts %v with another process's start record on the topic", n)
	}
	eventually(t, "the batch submitted after the grace", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if waited := time.Since(start); waited < grace {
		t.Fatalf("submitted %v after the start, before the %v grace", waited, grace)
	}
	if posts := f.tap.snapshot(); len(posts) != 1 || posts[0].at.Sub(start) < grace {
		t.Fatalf("POSTs %+v: want one, after the grace", posts)
	}
	if got := f.startRecords(); len(got) != 2 {
		t.Fatalf("start records %+v, want the other process's and ours", got)
	}
}

// A pair of faults: the process started first (no grace) and paid a
// WEpayout payee, which Wompi's listing does not show; then Redis is lost
// while one of its own Wompi POSTs is in flight, and a copy of that POST's
// request comes in another batch. The second recovery is not a first start
// (this process was handed an epoch), though its start record is still the
// only one and Wompi still lists nothing: it waits the grace, so the
// in-flight POST lands before the index is rebuilt from Wompi, and the copy
// is a duplicate. Without the guard the rebuilt index would miss the request
// and the copy would pay it again.
func TestLossAfterFirstStartWaitsTheGrace(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	wep := singleRails(t)[1](t)
	a := singleBatch(wep, "fs-a", 1)
	amounts := map[string]int64{"fs-2": 200_000}
	b := batch("fs-b", amounts, "fs-2")
	cp := batch("fs-copy", amounts, "fs-2")
	e := wep.engine(f, func(c *Config) { c.RecoveryGrace = 5 * time.Second })
	held, release := holdPost(e, b.BatchID)
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1", n)
	}

	loseRedisWhileHeld(t, f, e, b, cp, held)
	// The POST is let go within the grace; without it, once the copy has
	// been handled.
	releaseWithin(2500*time.Millisecond, release, func() bool { return outcome(e, "submitted")+outcome(e, "duplicate") > 1 })
	eventually(t, "batch b and the copy handled", func() bool {
		return outcome(e, "submitted")+outcome(e, "duplicate") == 3
	})
	_ = stop()
	f.noDoublePayment()
	if n, m := outcome(e, "duplicate"), testutil.ToFloat64(e.m.firstStarts); n != 1 || m != 1 {
		t.Fatalf("duplicates %v, first starts %v; want 1 and 1: the second recovery is not a first start", n, m)
	}
	if dlq := f.duplicateCopies(); dlq["fs-2"] != cp.BatchID || len(dlq) != 1 {
		t.Fatalf("DLQ copies %v, want fs-2 from the copy", dlq)
	}
}

// ensureEpoch hands out no epoch, and so allows no claim, while this
// process's start record cannot be written; once it is written, every
// epoch read finds it and writes no second one.
func TestEpochOnlyAfterTheStartRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	missing := f.engine(func(c *Config) { c.Topics.DispatcherStarts = "no-such-topic-" + f.topics.Batches })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := missing.ensureEpoch(ctx); err == nil || !strings.Contains(err.Error(), "TOPIC_DISPATCHER_STARTS") {
		t.Fatalf("ensureEpoch with no start record written: %v, want the start record's error", err)
	}
	if missing.hadEpoch.Load() || missing.started.Load() != nil {
		t.Fatal("an epoch handed out, or a start record counted, without a start record written")
	}

	e := f.engine(nil)
	for range 2 {
		if _, _, err := e.ensureEpoch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !e.hadEpoch.Load() {
		t.Fatal("hadEpoch not set by the epoch handed out")
	}
	if got := f.startRecords(); e.started.Load() == nil || len(got) != 1 || got[0].Boot != e.boot {
		t.Fatalf("start records %+v, want this process's, once", got)
	}
}

// A pair of faults across an upgrade: a dispatcher of the previous version
// (which writes no start record; here, one writing to another topic) has
// paid before and has a POST in flight when Redis is lost; the first
// replica of the new version then recovers and is handed a copy of the
// request in flight (on a partition of its own). Its own record is the only
// one on the topic, but Wompi lists a payout, so it is no first start: it
// waits the grace, the in-flight POST lands within it, and the copy is a
// duplicate. Without the Wompi condition the new replica rebuilds at once,
// misses the request in flight, and pays it again.
func TestOlderVersionPeerMeansGrace(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	amounts := map[string]int64{"up-1": 100_000, "up-2": 200_000}
	a := batch("up-a", amounts, "up-1")
	b := batch("up-b", amounts, "up-2")
	cp := batch("up-copy", amounts, "up-2")
	older := f.engine(func(c *Config) { c.Topics.DispatcherStarts = f.kafka.Topic(t, "older-starts", 1) })
	held, release := holdPost(older, b.BatchID)
	f.produce(f.topics.Batches, a)
	stopOlder, _ := f.run(older)
	eventually(t, "batch a submitted by the older version", func() bool { return outcome(older, "submitted") == 1 })
	copyDuringOlderPost(t, f, older, stopOlder, held, release, b, cp, f.group+"-newer", "Wompi lists the older version's payouts")
}

// copyDuringOlderPost is the second half of the upgrade pairs: batch b goes
// to the older dispatcher, whose Wompi POST of it is held; Redis is lost;
// a new-version dispatcher in consumer group group gets cp, a copy of b's
// payee, on a topic of its own. The held POST is let go within the grace
// (or once the copy is handled), and the payee must be paid once: the copy
// a duplicate, both of the older's batches submitted, and no first start
// counted (why: what shows the new version that dispatchers ran before).
func copyDuringOlderPost(t *testing.T, f *fixture, older *Engine, stopOlder func() error, held, release chan struct{},
	b, cp payout.Batch, group, why string) {
	t.Helper()
	f.produce(f.topics.Batches, b)
	<-held
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	mine := f.kafka.Topic(t, "newer-batches", 1)
	f.produce(mine, cp)
	newer := f.engine(func(c *Config) {
		c.RecoveryGrace = 5 * time.Second
		c.Topics.Batches = mine
		c.Group = group
	})
	stopNewer, _ := f.run(newer)
	eventually(t, "the new version's recovery started", func() bool { return testutil.ToFloat64(newer.m.recoveries) == 1 })
	// The held POST is let go within the grace; without it, once the new
	// version has handled the copy.
	releaseWithin(2500*time.Millisecond, release, func() bool { return outcome(newer, "submitted")+outcome(newer, "duplicate") > 0 })
	eventually(t, "the copy and batch b handled", func() bool {
		return outcome(newer, "submitted")+outcome(newer, "duplicate") == 1 && outcome(older, "submitted")+outcome(older, "duplicate") == 2
	})
	_ = stopNewer()
	_ = stopOlder()
	f.noDoublePayment()
	if n, m := outcome(newer, "duplicate"), outcome(older, "submitted"); n != 1 || m != 2 {
		t.Fatalf("the copy a duplicate %v times, batches submitted by the older version %v; want 1 and 2", n, m)
	}
	if n := testutil.ToFloat64(newer.m.firstStarts); n != 0 {
		t.Fatalf("first starts %v: %s", n, why)
	}
}

// releaseWithin closes release once done holds, or after at most d (half
// the tests' 5 s grace: the held POST then has the other half to land).
func releaseWithin(d time.Duration, release chan struct{}, done func() bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline) && !done(); {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
}

// The single-payout rails' side of the upgrade pair: a dispatcher of the
// previous version has its first POST to SmartFastPay or WEpayout in
// flight when Redis is lost, and the first new replica gets a copy of that
// payee. Wompi lists nothing, so the recovery skips the grace, but the
// rails' POSTs are not in Wompi's listing: the new replica's single-payout
// job waits out the grace before it looks the payee up, the held POST lands
// within it, and the lookup finds it. Without that wait the copy is paid
// again. (Found by a helper review.)
func TestFirstStartSingleRailWaitsTheGrace(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
		b := singleBatch(r, "fs-"+string(r.name), 1)
		cp := b
		cp.BatchID = b.BatchID + "-copy"
		older := r.engine(f, func(c *Config) { c.Topics.DispatcherStarts = f.kafka.Topic(t, "older-starts", 1) })
		held, release := holdPost(older, b.BatchID)
		f.produce(f.topics.Batches, b)
		stopOlder, _ := f.run(older)
		<-held
		if err := f.redis.FlushAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		mine := f.kafka.Topic(t, "newer-batches", 1)
		f.produce(mine, cp)
		newer := r.engine(f, func(c *Config) {
			c.RecoveryGrace = 5 * time.Second
			c.Topics.Batches = mine
			c.Group = f.group + "-newer"
		})
		stopNewer, _ := f.run(newer)
		eventually(t, "the new version's recovery started", func() bool { return testutil.ToFloat64(newer.m.recoveries) == 1 })
		releaseWithin(2500*time.Millisecond, release, func() bool { return outcome(newer, "submitted") > 0 })
		eventually(t, "the copy handled", func() bool { return outcome(newer, "submitted") == 1 })
		_ = stopNewer()
		_ = stopOlder()
		id := b.Transactions[0].RequestID
		if n := r.sim.Accepted(id); n != 1 {
			t.Fatalf("%s accepted %d times, want once", id, n)
		}
		if n := testutil.ToFloat64(newer.m.firstStarts); n != 1 {
			t.Fatalf("first starts %v, want 1 (Wompi lists nothing)", n)
		}
	})
}

// loseRedisWhileHeld produces batch b to e's batches topic, waits until
// its POST is held (holdPost), loses Redis, and produces cp, a copy, on the
// deferred topic (another worker, so the recovery runs while b's POST is
// held); it returns once e's second recovery has started.
func loseRedisWhileHeld(t *testing.T, f *fixture, e *Engine, b, cp payout.Batch, held <-chan struct{}) {
	t.Helper()
	f.produce(f.topics.Batches, b)
	<-held
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.produce(f.topics.BatchesDeferred, cp)
	eventually(t, "the second recovery started", func() bool { return testutil.ToFloat64(e.m.recoveries) == 2 })
}

// holdPost holds e's POSTs of batchID on the wire (past every check) until
// release is closed; held is closed when the first one is held.
func holdPost(e *Engine, batchID string) (held, release chan struct{}) {
	held, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.whileSending = func(id string) {
		if id == batchID {
			once.Do(func() { close(held) })
			<-release
		}
	}
	return held, release
}

// A pair of faults on a single-payout rail: Redis is lost in the middle of
// a batch; the job, slow to go on, sends its next payee's POST before its
// lease renewal notices (up to a third of the lease later), and that POST
// takes its time to land; a copy of the batch arrives meanwhile. The
// recovery waits RecoveryGrace plus the renewal interval, so the copy's
// lookups come after the late POST has landed and find it. With
// RecoveryGrace alone (longer than one call, but not than the renewal
// interval and one call), the copy pays that payee again. (Found by a
// helper review.)
func TestLateCallAfterALossIsWaitedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	wep := singleRails(t)[1](t)
	b := singleBatch(wep, "late", 2)
	// The copy holds both payees: the job posts them in no set order.
	cp := b
	cp.BatchID = b.BatchID + "-copy"
	e := wep.engine(f, func(c *Config) {
		// Renewals every 4 s; the recovery waits 2.1 + 4 s.
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = 2*time.Second, 2100*time.Millisecond, 12*time.Second
	})
	var posts atomic.Int32
	e.beforePost = func(id string) {
		if id == b.BatchID && posts.Add(1) == 1 {
			// Redis is lost just before the first payee's POST, and the
			// job is slow to go on.
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Error(err)
			}
			f.produce(f.topics.BatchesDeferred, cp)
			time.Sleep(1500 * time.Millisecond)
		}
	}
	e.whileSending = func(id string) {
		if id == b.BatchID && posts.Load() == 2 {
			// The second POST, sent 1.5 s after the loss (before the
			// renewal noticed), takes most of a call to land: 3.4 s after
			// the loss, past RecoveryGrace alone.
			time.Sleep(1900 * time.Millisecond)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the batch and its copy handled", func() bool {
		return outcome(e, "submitted")+outcome(e, "duplicate") >= 2
	})
	_ = stop()
	if n := posts.Load(); n < 2 {
		t.Fatalf("%d POSTs of the batch before the renewal noticed, want 2", n)
	}
	for _, tx := range b.Transactions {
		if n := wep.sim.Accepted(tx.RequestID); n != 1 {
			t.Fatalf("%s accepted %d times, want once", tx.RequestID, n)
		}
	}
}

// cutRedis makes every command of the client it hooks fail while cut is
// set: a replica cut off from Redis.
type cutRedis struct{ cut *atomic.Bool }

var errCut = errors.New("test: Redis unreachable")

func (c cutRedis) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c cutRedis) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.cut.Load() {
			cmd.SetErr(errCut)
			return errCut
		}
		return next(ctx, cmd)
	}
}
func (c cutRedis) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if c.cut.Load() {
			for _, cmd := range cmds {
				cmd.SetErr(errCut)
			}
			return errCut
		}
		return next(ctx, cmds)
	}
}

// A replica cut off from Redis: its renewals fail without an answer, so
// nothing tells its job the lease is gone (Redis may meanwhile be lost and
// restarted empty, and another replica recover and wait only its grace).
// The job sends no POST once its lease was last confirmed longer ago than a
// renewal interval plus RecoveryGrace minus one call; it resumes once Redis
// answers, and every payee is paid once.
func TestCutOffReplicaStopsPosting(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	wep := singleRails(t)[1](t)
	b := singleBatch(wep, "cut", 3)
	var cut atomic.Bool
	var cutAt atomic.Int64
	var posts, late atomic.Int32
	const fence = 1500 * time.Millisecond
	e := wep.engine(f, func(c *Config) {
		// The fence: 1 s (renewals) + 1.5 s - 1 s = 1.5 s.
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 1500*time.Millisecond, 3*time.Second
		c.Redis.AddHook(cutRedis{&cut})
	})
	e.beforePost = func(id string) {
		if id == b.BatchID && posts.Add(1) == 2 {
			cutAt.Store(time.Now().UnixNano())
			cut.Store(true)
			time.Sleep(2 * time.Second) // past the fence, the renewals failing
		}
	}
	// Payees go out in parallel: a POST that passed the fence before it
	// closed may still go out; none may after. The last confirmation of the
	// lease came before the cut.
	e.whileSending = func(id string) {
		if id == b.BatchID && cut.Load() && time.Since(time.Unix(0, cutAt.Load())) > fence {
			late.Add(1)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the second POST refused at the fence, or sent", func() bool {
		return testutil.ToFloat64(e.m.restarts) >= 1 || late.Load() > 0
	})
	if n := late.Load(); n != 0 {
		t.Fatalf("%d POSTs sent while cut off from Redis, past the fence", n)
	}
	cut.Store(false)
	eventually(t, "the batch paid once Redis answers", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	for _, tx := range b.Transactions {
		if n := wep.sim.Accepted(tx.RequestID); n != 1 {
			t.Fatalf("%s accepted %d times, want once", tx.RequestID, n)
		}
	}
}

// TestCutOffReplicaStopsPosting for a Wompi batch: the attempt's
// epoch-checked step confirmed the lease, then the replica is cut off from
// Redis before its POST goes out; past the fence (its own renewal failing)
// the POST is not sent, and once Redis answers the batch is paid once.
func TestCutOffReplicaStopsPostingWompi(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	b := simpleBatch("cutw", 2)
	var cut atomic.Bool
	var held, sentWhileCut atomic.Int32
	e := f.engine(func(c *Config) {
		// The fence: 1 s (renewals) + 1.5 s - 1 s = 1.5 s.
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 1500*time.Millisecond, 3*time.Second
		c.Redis.AddHook(cutRedis{&cut})
	})
	e.beforePost = func(id string) {
		if id == b.BatchID && held.Add(1) == 1 {
			cut.Store(true)
			time.Sleep(2 * time.Second) // past the fence
		}
	}
	e.whileSending = func(id string) {
		if id == b.BatchID && cut.Load() {
			sentWhileCut.Add(1)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the first attempt refused at the fence, or sent", func() bool {
		return testutil.ToFloat64(e.m.restarts) >= 1 || sentWhileCut.Load() > 0
	})
	if n := sentWhileCut.Load(); n != 0 {
		t.Fatalf("%d POSTs sent while cut off from Redis, past the fence", n)
	}
	if n := len(f.tap.snapshot()); n != 0 {
		t.Fatalf("%d POSTs reached Wompi while cut off", n)
	}
	cut.Store(false)
	eventually(t, "the batch submitted once Redis answers", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if n := sentWhileCut.Load(); n != 0 {
		t.Fatalf("%d POSTs sent while cut off from Redis, past the fence", n)
	}
	f.noDoublePayment()
}

func TestNoCommits(t *testing.T) {
	t.Parallel()
	const group = "dispatchers"
	offs := func(at ...int64) kadm.OffsetResponses {
		m := map[int32]kadm.OffsetResponse{}
		for p, o := range at {
			m[int32(p)] = kadm.OffsetResponse{Offset: kadm.Offset{Topic: "batches", Partition: int32(p), At: o}}
		}
		return kadm.OffsetResponses{"batches": m}
	}
	broken := offs(-1, -1)
	broken["batches"][1] = kadm.OffsetResponse{Err: errors.New("UNSTABLE_OFFSET_COMMIT")}
	for _, c := range []struct {
		name string
		offs kadm.OffsetResponses
		err  error
		want bool
	}{
		{"no topic", kadm.OffsetResponses{}, nil, true},
		{"none committed", offs(-1, -1, -1), nil, true},
		{"one committed", offs(-1, 4, -1), nil, false},
		{"committed at 0", offs(0), nil, false},
		{"a partition's error", broken, nil, false},
		{"the request's error", nil, errors.New("GROUP_AUTHORIZATION_FAILED"), false},
	} {
		got, why := noCommits(group, c.offs, c.err)
		if got != c.want || got == (why != "") {
			t.Errorf("%s: noCommits = %v (%q), want %v", c.name, got, why, c.want)
		}
	}
}

// A dispatcher of the previous version (it writes no start record) shares
// the consumer group during a rolling upgrade. It has finished a batch
// before, on SmartFastPay, which Wompi's listing does not show, and its
// first Wompi POST is in flight when Redis is lost; the first new replica
// gets a copy of that payee. The start records count one and Wompi lists
// nothing, but the group's committed offset says dispatchers ran before:
// the recovery waits the grace, the held POST lands within it, and the
// copy is a duplicate. Without the committed-offset check the copy is paid
// again.
func TestEarlierCommitsMeanGrace(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	sfp := singleRails(t)[0](t)
	a := singleBatch(sfp, "ec-sfp", 1)
	amounts := map[string]int64{"ec-1": 100_000}
	b := batch("ec-b", amounts, "ec-1")
	cp := batch("ec-copy", amounts, "ec-1")
	older := sfp.engine(f, func(c *Config) { c.Topics.DispatcherStarts = f.kafka.Topic(t, "older-starts", 1) })
	held, release := holdPost(older, b.BatchID)
	f.produce(f.topics.Batches, a)
	stopOlder, _ := f.run(older)
	eventually(t, "the SmartFastPay batch submitted by the older version", func() bool { return outcome(older, "submitted") == 1 })
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.kafka.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	eventually(t, "its offset committed", func() bool {
		offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), f.group)
		o, ok := offs.Lookup(f.topics.Batches, 0)
		return err == nil && ok && o.At == 1
	})
	// The new version joins the same group, as in a rolling upgrade.
	copyDuringOlderPost(t, f, older, stopOlder, held, release, b, cp, f.group, "the group has committed offsets")
}
