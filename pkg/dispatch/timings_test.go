package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// Replicas with different WOMPI_HTTP_TIMEOUT, RECOVERY_GRACE or
// DISPATCHER_LEASE_TTL (each valid on its own, as in a rolling change),
// end to end on SmartFastPay (no provider-side idempotency): replica A
// (HTTPTimeout 10 s, RecoveryGrace 11 s) sends a payee's create, which
// SmartFastPay applies 8 s later (inside A's own timeout), and A dies with
// that POST on the wire. Replica B, with shorter timings (HTTPTimeout
// 0.5 s, RecoveryGrace 1 s), takes the batch over once A's lease runs out.
// Waiting only its own max(G+L, recoveryWait) = 2 s, it looked the payee up
// before A's POST landed and posted it again: paid twice. It now waits what
// A's start record's timings need (peerWaits). The control run gives B A's
// timings.
func TestReplicaWithShorterTimingsWaitsForTheSlowestPOST(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		bTimeout time.Duration
		bGrace   time.Duration
	}{
		{"same-timings", 10 * time.Second, 11 * time.Second},
		{"B-shorter-timings", 500 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := singleRails(t)[0](t) // SmartFastPay
			sim := r.sim.(*sfptest.Server)
			cb := sink(t)
			late := &lateLanding{delay: 8 * time.Second}
			aClient := sim.Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = &http.Client{Transport: late} })

			f := newFixture(t, fixtureOpt{partitions: 1})
			b := singleBatch(r, "r22mix-"+tc.name, 1)
			rid := b.Transactions[0].RequestID

			// Replica A: WOMPI_HTTP_TIMEOUT=10s RECOVERY_GRACE=11s
			// DISPATCHER_LEASE_TTL=1s. Its create lands 8 s after it
			// went out; A crashes right after sending it.
			ra := r
			ra.client = aClient
			eA := ra.engine(f, func(c *Config) {
				c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = 10*time.Second, 11*time.Second, time.Second
				c.SingleConcurrency = 1
			})
			untilCrash(t, f, eA, b)
			sent := time.Now()

			// Replica B: its own (valid) timings.
			eB := r.engine(f, func(c *Config) {
				c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = tc.bTimeout, tc.bGrace, time.Second
				c.SingleConcurrency = 1
			})
			stop, _ := f.run(eB)
			eventually(t, "batch submitted by replica B", func() bool { return outcome(eB, "submitted") == 1 })
			_ = stop()
			late.sent.Wait() // A's create has been applied
			t.Logf("A's create was applied %v after A crashed; B's batch was submitted before that was checked", time.Since(sent).Round(100*time.Millisecond))

			if n := sim.Accepted(rid); n != 1 {
				t.Errorf("SmartFastPay paid %s %d times, want 1: replica B (WOMPI_HTTP_TIMEOUT=%v RECOVERY_GRACE=%v) took over a batch replica A "+
					"(WOMPI_HTTP_TIMEOUT=10s RECOVERY_GRACE=11s) was posting", rid, n, tc.bTimeout, tc.bGrace)
			}
		})
	}
}

// A start record carries its process's timings, and peerWaits takes the
// longest any recent record's need; records older than a process rewrites
// its own, and those without timings (older versions), count for nothing
// more than this process's own.
func TestPeerWaitsTakeTheLongestRecentTimings(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(func(c *Config) {
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 2*time.Second, 300*time.Millisecond
	})
	ownRecovery, ownTakeover := e.waitsOf(time.Second, 2*time.Second, 300*time.Millisecond)
	put := f.putStart
	check := func(what string, wantRecovery, wantTakeover time.Duration) {
		t.Helper()
		r, tk, err := e.peerWaits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r != wantRecovery || tk != wantTakeover {
			t.Fatalf("%s: waits %v / %v, want %v / %v", what, r, tk, wantRecovery, wantTakeover)
		}
	}
	check("no record", ownRecovery, ownTakeover)
	put(startRecord{Instance: "old-version", StartedAt: time.Now()}) // no timings
	put(startRecord{Instance: "long-gone", StartedAt: time.Now().Add(-e.railsEvery - 2*time.Hour),
		HTTPTimeoutMs: 600_000, RecoveryGraceMs: 700_000, LeaseTTLMs: 30_000})
	check("records without timings, or too old", ownRecovery, ownTakeover)
	put(startRecord{Instance: "slower", StartedAt: time.Now(), HTTPTimeoutMs: 10_000, RecoveryGraceMs: 11_000, LeaseTTLMs: 1_000})
	wantRecovery, wantTakeover := e.waitsOf(10*time.Second, 11*time.Second, time.Second)
	check("a live replica with longer timings", wantRecovery, wantTakeover)
}

// The Redis-loss half of the same fault: replica A (HTTPTimeout 1 s,
// RecoveryGrace 3 s, LeaseTTL 3 s: its POSTs may land up to 6 s after a
// loss) sends a Wompi POST inside its fence that lands about 4.9 s after
// the loss; replica "other", with shorter values (0.5 s, 1 s, 3 s: 2.5 s of
// its own), runs the recovery. Waiting its own 2.5 s, it rebuilt the index
// before A's payout was listed, and a copy of one of A's payees in another
// batch was paid again. It now waits A's 6 s (A's start record).
func TestRecoveryWaitsForASlowerReplicasPOST(t *testing.T) {
	t.Parallel()
	lateAtTheFence(t, "st",
		func(c *Config) {
			c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 3*time.Second, 3*time.Second
		},
		func(c *Config) {
			c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = 500*time.Millisecond, time.Second, 3*time.Second
		})
}

// A replica whose REDIS_PREFIX differs from another live replica's keeps
// its claims and duplicate index apart from it: a batch moved between
// them is claimed afresh, and a payee one paid is proven new to the other.
// Each start record names its prefix, and a replica that reads one of the
// last day naming another says so (log and gauge); records of versions
// that wrote none, and older ones, do not count.
func TestAnotherRedisPrefixOnTheStartsTopicIsReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	ctx := context.Background()
	put := f.putStart
	check := func(what string, want float64) {
		t.Helper()
		e.m.prefixMismatch.Set(-1)
		e.checkPrefixes(ctx)
		if got := testutil.ToFloat64(e.m.prefixMismatch); got != want {
			t.Fatalf("%s: gauge %v, want %v", what, got, want)
		}
	}
	if err := e.writeStart(ctx); err != nil {
		t.Fatal(err)
	}
	var own []string
	if err := e.readStarts(ctx, func(sr *startRecord) {
		if sr.RedisPrefix != nil {
			own = append(own, *sr.RedisPrefix)
		}
	}); err != nil || !slices.Equal(own, []string{e.cfg.Prefix}) {
		t.Fatalf("own start record's prefix %q (%v), want %q", own, err, e.cfg.Prefix)
	}
	check("its own record", 0)
	other := "elsewhere:"
	put(startRecord{Instance: "old-version", StartedAt: time.Now()})
	put(startRecord{Instance: "long-gone", StartedAt: time.Now().Add(-e.railsEvery - 2*time.Hour), RedisPrefix: &other})
	check("a record without a prefix, and one too old", 0)
	put(startRecord{Instance: "live", StartedAt: time.Now(), RedisPrefix: &other})
	check("a live replica with another prefix", 1)
	put(startRecord{Instance: "live", StartedAt: time.Now().Add(time.Millisecond), RedisPrefix: &e.cfg.Prefix})
	check("that replica restarted with this prefix", 0)
}

// The check runs again while the process runs (every prefixCheckEvery): a
// replica started later with another REDIS_PREFIX raises the gauge of one
// started before it, and restarted with this prefix clears it. Checked
// only at start, the first raised the gauge for good and the second never
// did.
func TestRedisPrefixIsComparedAgainWhileRunning(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	e.prefixEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.keepCheckingPrefixes(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	other := "elsewhere:"
	f.putStart(startRecord{Instance: "later", StartedAt: time.Now(), RedisPrefix: &other})
	eventually(t, "the later replica's prefix reported", func() bool { return testutil.ToFloat64(e.m.prefixMismatch) == 1 })
	f.putStart(startRecord{Instance: "later", StartedAt: time.Now().Add(time.Millisecond), RedisPrefix: &e.cfg.Prefix})
	eventually(t, "the report cleared", func() bool { return testutil.ToFloat64(e.m.prefixMismatch) == 0 })
}

// putStart writes a start record as another dispatcher would.
func (f *fixture) putStart(sr startRecord) {
	f.t.Helper()
	v, err := json.Marshal(sr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.kafka.Produce(f.t, f.topics.DispatcherStarts, &kgo.Record{Key: []byte(sr.Instance), Value: v})
}
