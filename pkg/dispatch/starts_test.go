package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestOnlyStart(t *testing.T) {
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

// A pair of faults: the process started first (no grace), paid, and then
// Redis is lost while one of its own POSTs is in flight, and a copy of
// that POST's request comes in another batch. The second recovery is not a
// first start: it waits the grace, so the in-flight POST lands before the
// index is rebuilt from Wompi, and the copy is a duplicate. Without the
// grace the rebuilt index would miss the request and the copy would pay it
// again.
func TestLossAfterFirstStartWaitsTheGrace(t *testing.T) {
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	amounts := map[string]int64{"fs-1": 100_000, "fs-2": 200_000}
	held := make(chan struct{})
	release := make(chan struct{})
	b := batch("fs-b", amounts, "fs-2")
	cp := batch("fs-copy", amounts, "fs-2")
	e := f.engine(func(c *Config) { c.RecoveryGrace = 5 * time.Second })
	e.beforePost = func(batchID string) {
		if batchID == b.BatchID {
			close(held)
			<-release
		}
	}
	f.produce(f.topics.Batches, batch("fs-a", amounts, "fs-1"))
	stop, _ := f.run(e)
	eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1", n)
	}

	f.produce(f.topics.Batches, b)
	<-held
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The copy comes on the other topic: another worker, so the recovery
	// runs while batch b's POST is held.
	f.produce(f.topics.BatchesDeferred, cp)
	eventually(t, "the second recovery started", func() bool { return testutil.ToFloat64(e.m.recoveries) == 2 })
	// The POST is let go within the grace; without it, as soon as the
	// rebuild is done.
	ready := func() bool {
		_, ok, err := e.st.epoch(context.Background())
		return err == nil && ok
	}
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline) && !ready(); {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	eventually(t, "batch b submitted and the copy refused", func() bool {
		return outcome(e, "submitted") == 2 && outcome(e, "duplicate") == 1
	})
	_ = stop()
	f.noDoublePayment()
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1: the second recovery is not one", n)
	}
	if dlq := f.duplicateCopies(); dlq["fs-2"] != cp.BatchID || len(dlq) != 1 {
		t.Fatalf("DLQ copies %v, want fs-2 from the copy", dlq)
	}
}

// ensureEpoch hands out no epoch, and so allows no claim, while this
// process's start record cannot be written; once it is written, every
// epoch read finds it and writes no second one.
func TestEpochOnlyAfterTheStartRecord(t *testing.T) {
	f := newFixture(t, fixtureOpt{})
	missing := f.engine(func(c *Config) { c.Topics.DispatcherStarts = "no-such-topic-" + f.topics.Batches })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := missing.ensureEpoch(ctx); err == nil || !strings.Contains(err.Error(), "TOPIC_DISPATCHER_STARTS") {
		t.Fatalf("ensureEpoch with no start record written: %v, want the start record's error", err)
	}
	if missing.hadEpoch.Load() || missing.started.Load() != nil {
		t.Fatal("an epoch handed out, or a start record counted, without a start record written")
	}

	e := f.engine(nil)
	for range 2 {
		if _, err := e.ensureEpoch(context.Background()); err != nil {
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
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	amounts := map[string]int64{"up-1": 100_000, "up-2": 200_000}
	a := batch("up-a", amounts, "up-1")
	b := batch("up-b", amounts, "up-2")
	cp := batch("up-copy", amounts, "up-2")
	held := make(chan struct{})
	release := make(chan struct{})
	older := f.engine(func(c *Config) { c.Topics.DispatcherStarts = f.kafka.Topic(t, "older-starts", 1) })
	older.beforePost = func(batchID string) {
		if batchID == b.BatchID {
			close(held)
			<-release
		}
	}
	f.produce(f.topics.Batches, a)
	stopOlder, _ := f.run(older)
	eventually(t, "batch a submitted by the older version", func() bool { return outcome(older, "submitted") == 1 })
	f.produce(f.topics.Batches, b)
	<-held
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The new version's partition holds the copy.
	mine := f.kafka.Topic(t, "newer-batches", 1)
	f.produce(mine, cp)
	newer := f.engine(func(c *Config) {
		c.RecoveryGrace = 5 * time.Second
		c.Topics.Batches = mine
		c.Group = f.group + "-newer"
	})
	stopNewer, _ := f.run(newer)
	eventually(t, "the new version's recovery started", func() bool { return testutil.ToFloat64(newer.m.recoveries) == 1 })
	// The held POST is let go within the grace; without it, once the new
	// version has handled the copy.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && outcome(newer, "submitted")+outcome(newer, "duplicate") == 0; {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
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
		t.Fatalf("first starts %v: Wompi lists the older version's payouts", n)
	}
}
