package dispatch

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// restartKeepingEpoch restarts the fixture's redis-server with only the
// dispatcher's epoch hash carried over: a Redis restarted from a snapshot
// (or an fsync) older than its last writes, or failed over to a replica
// that missed them. The epoch survives, the batch records and the
// duplicate index entries written since are gone.
func (f *fixture) restartKeepingEpoch() {
	f.t.Helper()
	if err := f.redis.RestartKeeping(context.Background(), f.redis.Prefix()+"{dispatch}:epoch"); err != nil {
		f.t.Fatal(err)
	}
}

// Two faults together on a single-payout rail: a payee's POST times out on
// our side and the provider applies it a moment later, and Redis restarts
// in between keeping its epoch but not the batch record that said the
// batch was posting (a failover to a replica that missed it, a restart
// from an older snapshot). The epoch names the Redis process that stamped
// it, so the restarted one is taken for a loss: the job's renewal is
// stale, a recovery waits out the grace, and the retry's lookup finds the
// payout that landed. Without the stamp the retry claims the batch afresh,
// looks the payee up before the late POST has landed, and pays again.
// (Found by a helper review.)
func TestRestartKeepingTheEpochIsALoss(t *testing.T) {
	t.Parallel()
	late := &lateLanding{delay: 2500 * time.Millisecond}
	hc := &http.Client{Transport: late}
	r := singleRails(t)[0](t)
	cb := sink(t)
	r.client = r.sim.(*sfptest.Server).Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = hc })
	f := newFixture(t, fixtureOpt{ownRedis: true})
	b := singleBatch(r, "rk", 1)
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	var once sync.Once
	e.whileSending = func(string) { once.Do(f.restartKeepingEpoch) }
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	late.sent.Wait()
	// Found at the provider on a new claim after a loss, the payee gets no
	// SUBMITTED from the dispatcher (the tracker's rebuilt schedule follows
	// it): what matters is that it was paid once.
	if id := b.Transactions[0].RequestID; r.sim.Accepted(id) != 1 {
		t.Fatalf("%s accepted %d times, want 1", id, r.sim.Accepted(id))
	}
	if n := testutil.ToFloat64(e.m.recoveries); n != 1 {
		t.Fatalf("recoveries %v, want 1: the restarted Redis is a loss", n)
	}
}

// The Wompi side: a batch is paid, then Redis restarts keeping its epoch
// but not the duplicate index entries; a copy of one payee comes in
// another batch. The claim of the copy finds the epoch stamped by another
// Redis process: a recovery rebuilds the index from Wompi, and the copy is
// a duplicate. Without the stamp the copy's index entry is taken afresh
// and the payee is paid twice. (Found by a helper review.)
func TestRestartKeepingTheEpochRebuildsTheIndex(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	amounts := map[string]int64{"rk-1": 100_000, "rk-2": 200_000}
	b := batch("rk-b", amounts, "rk-1", "rk-2")
	cp := batch("rk-copy", amounts, "rk-1")
	e := f.engine(nil)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch b submitted", func() bool { return outcome(e, "submitted") == 1 })
	f.restartKeepingEpoch()
	f.produce(f.topics.Batches, cp)
	eventually(t, "the copy handled", func() bool { return outcome(e, "submitted")+outcome(e, "duplicate") == 2 })
	_ = stop()
	f.noDoublePayment()
	if n := outcome(e, "duplicate"); n != 1 {
		t.Fatalf("the copy a duplicate %v times, want 1", n)
	}
	if n := testutil.ToFloat64(e.m.recoveries); n != 1 {
		t.Fatalf("recoveries %v, want 1: the restarted Redis is a loss", n)
	}
}

// A recovery stamps its epoch with the Redis process that runs it, and
// finishes only on that process: a restart or a failover during the
// rebuild may have lost part of what it wrote, and the epoch must not
// turn ready over that.
func TestRecoveryFinishesOnTheServerItStarted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	e := f.engine(nil)
	defer e.Close()
	ctx := context.Background()
	rdb, key := f.redis.Client(), f.redis.Prefix()+"{dispatch}:epoch"
	if err := recoveryStartScript.Run(ctx, rdb, []string{key}, "e9", epochLayout, 1).Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := rdb.HGet(ctx, key, "server").Val(), redisRunID(t, rdb); got != want {
		t.Fatalf("epoch stamped %q, want this server's run id %q", got, want)
	}
	if _, ready, err := e.st.epoch(ctx); err != nil || ready {
		t.Fatalf("a rebuilding epoch read ready=%v (%v)", ready, err)
	}
	// The server that started the rebuild is gone.
	if err := rdb.HSet(ctx, key, "server", "0123456789abcdef").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := finishRecoveryScript.Run(ctx, rdb, []string{key, e.st.graceKey()}, "e9", "").Int(); err != nil || n != 0 {
		t.Fatalf("finish on another server: %d %v, want 0", n, err)
	}
	if _, ready, _ := e.st.epoch(ctx); ready {
		t.Fatal("the epoch turned ready on another server than the one that rebuilt it")
	}
	// A ready epoch stamped by another server is not ready either.
	if err := rdb.HSet(ctx, key, "state", "ready").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ready, _ := e.st.epoch(ctx); ready {
		t.Fatal("an epoch stamped by another server reads ready")
	}
	if c, err := e.st.claim(ctx, "w1", "e9", "b-1", rail.Wompi); err != nil || c.code != "noepoch" {
		t.Fatalf("claim under an epoch of another server: %+v %v, want noepoch", c, err)
	}
	// Stamped by this one, it is.
	if err := rdb.HSet(ctx, key, "server", redisRunID(t, rdb), "state", "rebuilding").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := finishRecoveryScript.Run(ctx, rdb, []string{key, e.st.graceKey()}, "e9", "").Int(); err != nil || n != 1 {
		t.Fatalf("finish on the same server: %d %v, want 1", n, err)
	}
	if id, ready, err := e.st.epoch(ctx); err != nil || !ready || id != "e9" {
		t.Fatalf("epoch %q ready=%v (%v), want e9 ready", id, ready, err)
	}
}

// lateApplied holds the first Wompi POST: its client gives up at its own
// deadline, and the provider applies it delay after it went out.
type lateApplied struct {
	base  http.RoundTripper
	delay time.Duration
	once  sync.Once
	sent  sync.WaitGroup
}

func (l *lateApplied) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/payouts") {
		return l.base.RoundTrip(req)
	}
	first := false
	l.once.Do(func() { first = true })
	if !first {
		return l.base.RoundTrip(req)
	}
	if err := forwardLater(l.base, req, l.delay, &l.sent); err != nil {
		return nil, err
	}
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// Three faults lined up: a replica is cut off from Redis just before its
// POST, Redis is lost, and the POST, sent just inside the lease fence, is
// applied by Wompi after its client gave up (within RecoveryGrace of going
// out); a copy of one of its payees reaches another replica, which
// recovers. The recovery waits the fence's limit plus RecoveryGrace, so
// its rebuild lists the late payout and the copy is a duplicate. With the
// wait one margin (RecoveryGrace - HTTPTimeout) shorter, the rebuild comes
// before the payout lands and the copy pays the payee again. (Found by a
// helper review.)
func TestPostAppliedLateAtTheFenceIsWaitedFor(t *testing.T) {
	t.Parallel()
	// The fence: 1 s (renewals) + 3 s - 1 s = 3 s; the recovery's wait:
	// 3 s + 1 s + 2 s = 6 s (4 s without the margin).
	timing := func(c *Config) {
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 3*time.Second, 3*time.Second
	}
	lateAtTheFence(t, "lf", timing, timing)
}

// lateAtTheFence runs the faults above: replica a, with timingA, posts a
// batch just inside its lease fence after Redis was lost, and Wompi applies
// the POST 2.5 s later; the replica with timingOther recovers and gets a
// copy of one payee. The copy must be a duplicate, the payee paid once.
func lateAtTheFence(t *testing.T, prefix string, timingA, timingOther func(*Config)) {
	f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
	amounts := map[string]int64{prefix + "-1": 100_000, prefix + "-2": 200_000}
	b := batch(prefix+"-b", amounts, prefix+"-1", prefix+"-2")
	cp := batch(prefix+"-copy", amounts, prefix+"-1")
	late := &lateApplied{base: f.tap, delay: 2500 * time.Millisecond}
	var cut atomic.Bool
	a := f.engine(func(c *Config) {
		timingA(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: late}), wompi.RailConfig{})
		c.Redis.AddHook(cutRedis{&cut})
	})
	mine := f.kafka.Topic(t, "copy-batches", 1)
	other := f.engine(func(c *Config) {
		timingOther(c)
		c.Topics.Batches = mine
		c.Group = f.group + "-other"
	})
	var once sync.Once
	a.beforePost = func(id string) {
		if id != b.BatchID {
			return
		}
		once.Do(func() {
			// The posting step confirmed the lease just before.
			confirmed := time.Now()
			cut.Store(true)
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Error(err)
			}
			f.produce(mine, cp)
			// Inside a's fence (3 s since that confirmation with the
			// timings above): the POST goes out about 2.4 s after the loss
			// and lands 2.5 s later, past a 4 s wait, within a 6 s one.
			time.Sleep(time.Until(confirmed.Add(2400 * time.Millisecond)))
		})
	}
	stopOther, _ := f.run(other)
	f.produce(f.topics.Batches, b)
	stopA, _ := f.run(a)
	eventually(t, "the copy handled", func() bool { return outcome(other, "submitted")+outcome(other, "duplicate") == 1 })
	late.sent.Wait()
	cut.Store(false)
	eventually(t, "batch b handled", func() bool { return outcome(a, "submitted")+outcome(a, "duplicate") >= 1 })
	_ = stopA()
	_ = stopOther()
	f.noDoublePayment()
	if n := outcome(other, "duplicate"); n != 1 {
		t.Fatalf("the copy a duplicate %v times, want 1", n)
	}
}

// Where Redis gives no run id (INFO refused by an ACL; miniredis has no
// server section either), an epoch without a stamp, as the previous
// version writes it, must read the same on both sides: the Go check that
// decides whether to recover and the scripts that guard every step. Were
// they to disagree, every claim would answer "noepoch" while no recovery
// ever ran: the pipeline would stall for good. The dispatcher says at
// start that it cannot notice a restart or a failover there. (Found by a
// helper review.)
func TestNoRunIDReadsTheSameEverywhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	ctx := context.Background()
	admin := f.redis.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr(), Username: "noinfo", Password: "pw"})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Info(ctx, "server").Err(); err == nil {
		t.Fatal("INFO allowed to the test's user: the test needs it refused")
	}
	e := f.engine(func(c *Config) { c.Redis = rdb })
	defer e.Close()
	if err := admin.HSet(ctx, f.redis.Prefix()+"{dispatch}:epoch", "id", "e0", "state", "ready", "layout", epochLayout).Err(); err != nil {
		t.Fatal(err)
	}
	_, ready, err := e.st.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.st.claim(ctx, "w1", "e0", "b-1", rail.Wompi)
	if err != nil {
		t.Fatal(err)
	}
	if !ready || c.code != "fresh" {
		t.Fatalf("epoch ready=%v, claim %q: the reading of an unstamped epoch differs between Go and the scripts", ready, c.code)
	}
	e.checkRunID(ctx)
	if v := testutil.ToFloat64(e.m.runIDUnknown); v != 1 {
		t.Fatalf("payouts_dispatcher_redis_run_id_unknown = %v, want 1", v)
	}
}
