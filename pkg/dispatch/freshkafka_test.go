package dispatch

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// On a Kafka cluster the program created itself (FreshKafka, the local
// run), a first start pays the single-payout rails at once: no dispatcher
// from before the start records can have a POST in flight, so there is no
// grace to wait out (an hour here), and the epoch is complete from the
// start, so a payee the index proves new is posted without a lookup.
func TestFreshKafkaFirstStartPaysSingleRailsAtOnce(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
		e := r.engine(f, func(c *Config) { c.RecoveryGrace, c.FreshKafka = time.Hour, true })
		b := singleBatch(r, "fresh-"+string(r.name), 3)
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "the single-payout batch submitted without waiting an hour", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
			t.Fatalf("first starts %v, want 1", n)
		}
		if n := testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(r.name))); n != 3 {
			t.Fatalf("lookups skipped %v, want 3: the first start's epoch is complete", n)
		}
		for _, tx := range b.Transactions {
			if n := r.sim.Accepted(tx.RequestID); n != 1 {
				t.Fatalf("%s accepted %d times, want once", tx.RequestID, n)
			}
		}
	})
}

// FreshKafka changes nothing but a first start: with another process's
// start record on the topic, the recovery waits its grace before any POST,
// as on any other cluster.
func TestFreshKafkaWithAnotherStartWaitsTheGrace(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	f.kafka.Produce(t, f.topics.DispatcherStarts, &kgo.Record{Key: []byte("other/1"), Value: []byte(`{"instance":"other","boot":"1"}`)})
	const grace = 2500 * time.Millisecond
	e := r.engine(f, func(c *Config) { c.RecoveryGrace, c.FreshKafka = grace, true })
	f.produce(f.topics.Batches, singleBatch(r, "fresh-other", 1))
	start := time.Now()
	stop, _ := f.run(e)
	eventually(t, "the batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if waited := time.Since(start); waited < grace {
		t.Fatalf("submitted %v after the start, before the %v grace", waited, grace)
	}
	if n := testutil.ToFloat64(e.m.firstStarts); n != 0 {
		t.Fatalf("first starts %v with another process's start record on the topic", n)
	}
}

// A pair of faults on a fresh cluster: the process started first (no wait,
// its epoch complete) and claimed a batch whose one payee the rail refused
// (so the rails still list no payout), then Redis is lost while one of its
// own WEpayout POSTs is in flight, and a copy of that payee comes in
// another batch. The second recovery is not a first start (this process
// was handed an epoch), so it waits the grace and lists the rail after it:
// the held POST lands within the grace and the copy finds it. Were
// FreshKafka to make any recovery a first start, the copy would pay the
// payee again.
func TestFreshKafkaLossAfterFirstStartWaitsTheGrace(t *testing.T) {
	// Not t.Parallel: a held POST must land within a wall-clock window (the
	// grace, or the lease fence) that the other tests' load would stretch.
	wep := singleRails(t)[1](t)
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	e := wep.engine(f, func(c *Config) { c.RecoveryGrace, c.FreshKafka = 5*time.Second, true })
	a := singleBatch(wep, "fresh-a", 1)
	wep.invalid(&a.Transactions[0].Beneficiary)
	b := singleBatch(wep, "fresh-b", 1)
	cp := b
	cp.BatchID = b.BatchID + "-copy"
	held, release := holdPost(e, b.BatchID)
	f.produce(f.topics.Batches, a)
	stop, _ := f.run(e)
	eventually(t, "batch a handled", func() bool { return e.hadEpoch.Load() && outcome(e, "submitted")+outcome(e, "rejected") == 1 })
	t.Logf("batch a: submitted %d, rejected %d", outcome(e, "submitted"), outcome(e, "rejected"))
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1", n)
	}
	loseRedisWhileHeld(t, f, e, b, cp, held)
	// The POST is let go within the grace; without it, once the copy has
	// been handled.
	id := b.Transactions[0].RequestID
	releaseWithin(2500*time.Millisecond, release, func() bool { return wep.sim.Accepted(id) > 0 })
	handled := func() int {
		return outcome(e, "submitted") + outcome(e, "rejected") + outcome(e, "duplicate") + outcome(e, "skipped")
	}
	eventually(t, "batch b and its copy handled", func() bool { return handled() >= 3 })
	_ = stop()
	t.Logf("outcomes: submitted %d, duplicate %d, skipped %d", outcome(e, "submitted"), outcome(e, "duplicate"), outcome(e, "skipped"))
	if n := wep.sim.Accepted(id); n != 1 {
		t.Fatalf("%s accepted %d times, want once", id, n)
	}
	if n := testutil.ToFloat64(e.m.firstStarts); n != 1 {
		t.Fatalf("first starts %v, want 1: the second recovery is not a first start", n)
	}
}
