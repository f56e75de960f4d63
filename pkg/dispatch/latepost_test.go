package dispatch

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Two faults lined up: a POST whose answer is lost and that Wompi applies
// late (after its client gave up, within RecoveryGrace of its start), then
// a refusal of the retry under the same key. The lookup that follows the
// refusal runs before the first POST has landed, so it finds nothing; a
// refusal taken on that lookup's word ends (or defers) a batch Wompi then
// pays. Every refusal below waits for a lookup begun once no POST of the
// job can land (lookupSettled).

// lateThenRefused runs one two-payee batch whose first POST is applied one
// second late (its client times out after half a second) and whose second
// POST gets refusal. It returns the engine once Wompi holds the late POST
// and the batch has an outcome.
func lateThenRefused(t *testing.T, refusal fault, outcomes ...string) (*fixture, *Engine, payout.Batch, func() error) {
	t.Helper()
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.lateBy, f.tap.late = time.Second, make(chan struct{})
	f.tap.fault = func(n int) fault {
		switch n {
		case 1:
			return faultLateApply
		case 2:
			return refusal
		}
		return faultNone
	}
	// RecoveryGrace is the fixture's 3 s: the first POST lands 1 s after
	// its start, well inside it.
	e := f.engine(func(c *Config) {
		c.HTTPTimeout = 500 * time.Millisecond
		c.DeferBalanceRetry = 100 * time.Millisecond
	})
	b := simpleBatch("late-"+string(rune('a'+int(refusal))), 2)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool {
		n := 0
		for _, o := range outcomes {
			n += outcome(e, o)
		}
		return n == 1
	})
	select {
	case <-f.tap.late:
	case <-time.After(10 * time.Second):
		t.Fatal("the late POST never reached Wompi")
	}
	return f, e, b, stop
}

// The refusal is a validation 400: the batch Wompi pays ends SUBMITTED,
// never REJECTED.
func TestLateAppliedPostThenValidationRefusal(t *testing.T) {
	t.Parallel()
	f, e, b, stop := lateThenRefused(t, fault400, "submitted", "rejected")
	_ = stop()
	f.noDoublePayment()
	if n := outcome(e, "rejected"); n != 0 {
		t.Fatalf("Wompi holds the batch, yet it was REJECTED: the refusal's lookup ran before the first POST could land")
	}
	for _, s := range f.statuses() {
		if s.Status == payout.StatusRejected {
			t.Fatalf("REJECTED on a paid request: %+v", s)
		}
	}
	f.checkSubmitted(b)
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("%d POSTs, want 2 (the late one and the refused one)", n)
	}
}

// The refusal is for good (a 415): the batch is adopted, not poisoned
// (no REJECTED, no dead letter).
func TestLateAppliedPostThenPermanentRefusal(t *testing.T) {
	t.Parallel()
	f, e, b, stop := lateThenRefused(t, fault415, "submitted", "failed")
	_ = stop()
	f.noDoublePayment()
	if n := outcome(e, "failed"); n != 0 {
		t.Fatalf("Wompi holds the batch, yet it was ended as failed (poisoned)")
	}
	if dlq := f.kafka.ReadAll(t, f.topics.RequestsDLQ); len(dlq) != 0 {
		t.Fatalf("%d dead letters for a batch Wompi pays", len(dlq))
	}
	f.checkSubmitted(b)
}

// The refusal is for now (EXC_008, insufficient balance): the batch is
// deferred with its reservation kept, and its copy is not due before the
// first POST can have landed; the copy then finds the payout and adopts it.
func TestLateAppliedPostThenRefusalForNow(t *testing.T) {
	t.Parallel()
	f, e, b, stop := lateThenRefused(t, faultBalance400, "deferred")
	defer func() { _ = stop() }()
	day := payout.DayIn(testStart, bogota).String()
	u, err := e.budget.Usage(context.Background(), rail.Wompi, day, wompitest.AccountMain)
	if err != nil || u.AmountInCents != b.TotalAmountInCents || u.Batches != 1 {
		t.Fatalf("usage %+v %v after a refusal for now that a late POST may answer: the reservation went back", u, err)
	}
	deferred := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	if len(deferred) != 1 {
		t.Fatalf("%d deferred records, want 1", len(deferred))
	}
	var cp payout.Batch
	if err := f.codec.DecodeBatch(deferred[0].Value, &cp); err != nil {
		t.Fatal(err)
	}
	// DeferBalanceRetry is 100 ms; the clock stands at testStart. The
	// refused POST went out at most a second before the deferral, so the
	// copy waits at least the rest of RecoveryGrace (3 s) from it.
	if cp.NotBefore == nil || cp.NotBefore.Before(testStart.Add(time.Second)) {
		t.Fatalf("the copy is due at %v, before a POST sent at %v can have landed", cp.NotBefore, testStart)
	}
	f.clock.Advance(time.Minute)
	eventually(t, "the copy adopted the payout", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	f.noDoublePayment()
	f.checkSubmitted(b)
	// Adopted on its lookup: the copy of a batch an earlier POST may have
	// created never POSTs before a lookup proves it absent (Wompi's live
	// key would hide that repeat here, not once the key is gone).
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("%d POSTs, want 2 (the late one and the refused one): the copy posted again before looking the batch up", n)
	}
	u, err = e.budget.Usage(context.Background(), rail.Wompi, day, wompitest.AccountMain)
	if err != nil || u.AmountInCents != b.TotalAmountInCents || u.Batches != 1 {
		t.Fatalf("usage %+v %v once the copy adopted the payout, want the batch's amount and one batch", u, err)
	}
}

// ingest writes batches in Kafka transactions, each leaving a commit marker
// after its records. Once the dispatcher has handled every batch, its
// group's committed offset reaches the end of the topic: an idle group
// shows no lag (payouts_consumer_group_lag, which PayoutsConsumerStalled
// alerts on), and no marker is read as a batch.
func TestIdleGroupHasNoLagAfterTransactionalBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	b := simpleBatch("txn-marker", 2)
	v, err := f.codec.AppendBatch(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := f.kafka.Client(t, kgo.TransactionalID("ingest-like-"+f.group), kgo.DefaultProduceTopic(f.topics.Batches))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(b.BatchID), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	stop, _ := f.run(e)
	defer func() { _ = stop() }()
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	adm := f.kafka.Admin(t)
	var lag int64 = -1
	eventually(t, "no lag on the batches topic", func() bool {
		lags, err := adm.Lag(ctx, f.group)
		gl, ok := lags[f.group]
		if err != nil || !ok || gl.Error() != nil {
			return false
		}
		lag = gl.Lag.TotalByTopic()[f.topics.Batches].Lag
		return lag == 0
	})
	if n := outcome(e, "skipped") + outcome(e, "dlq"); n != 0 {
		t.Fatalf("%d records read as something other than a batch", n)
	}
	f.checkSubmitted(b)
}

// failLookups answers 503 to GET /payouts?reference= from `from` to `to`
// after the first POST went out.
type failLookups struct {
	base     http.RoundTripper
	mu       sync.Mutex
	post     time.Time
	from, to time.Duration
}

func (t *failLookups) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	if req.Method == http.MethodPost && t.post.IsZero() {
		t.post = time.Now()
	}
	post := t.post
	t.mu.Unlock()
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/payouts") && req.URL.Query().Get("reference") != "" && !post.IsZero() {
		if d := time.Since(post); d >= t.from && d < t.to {
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{"status":503,"code":"SERVICE_UNAVAILABLE","message":"injected"}`)), Request: req}, nil
		}
	}
	return t.base.RoundTrip(req)
}

// refusedThenLookupsFail runs one batch whose every POST gets refusal while
// Wompi's lookups fail from `from` to `to` after the first POST, with
// RailPatience 2 s below RecoveryGrace's 3 s (as the defaults have them:
// 30 s and 35 s).
func refusedThenLookupsFail(t *testing.T, refusal fault, from, to time.Duration, outcomes ...string) (*fixture, *Engine, func() error) {
	t.Helper()
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.fault = func(int) fault { return refusal }
	fl := &failLookups{base: f.tap, from: from, to: to}
	e := f.engine(func(c *Config) {
		c.RailPatience = 2 * time.Second
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: fl}), wompi.RailConfig{})
	})
	f.produce(f.topics.Batches, simpleBatch("patience", 2))
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool {
		n := 0
		for _, o := range outcomes {
			n += outcome(e, o)
		}
		return n >= 1
	})
	return f, e, stop
}

// The wait for a refused POST's earlier attempts to land is no failure of
// Wompi's: a short lookup failure late in it (past the job's patience,
// counted from its start) is ridden out, and the batch ends REJECTED.
func TestSettleWaitDoesNotSpendRailPatience(t *testing.T) {
	t.Parallel()
	_, e, stop := refusedThenLookupsFail(t, fault400, 2100*time.Millisecond, 2500*time.Millisecond, "rejected", "deferred")
	_ = stop()
	if outcome(e, "deferred") != 0 || outcome(e, "rejected") != 1 {
		t.Fatalf("rejected %d, deferred %d: a 0.4 s lookup failure during the settle wait deferred the batch RAIL_UNAVAILABLE",
			outcome(e, "rejected"), outcome(e, "deferred"))
	}
}

// A batch refused for good whose settle wait meets a Wompi failing past its
// patience (RecoveryGrace 3 s plus RailPatience 2 s after the POST) waits
// on the deferred topic (RAIL_UNAVAILABLE), like any batch of a failing
// Wompi, rather than be retried in place and, once the lookups answer
// again (here 5.5 s after the POST), posted again at once.
func TestPoisonLookupPastPatienceDefers(t *testing.T) {
	t.Parallel()
	f, e, stop := refusedThenLookupsFail(t, fault415, 2100*time.Millisecond, 5500*time.Millisecond, "failed", "deferred")
	time.Sleep(time.Second) // a retry in place would post again by now
	_ = stop()
	if n := len(f.tap.snapshot()); n != 1 || outcome(e, "deferred") != 1 {
		t.Fatalf("%d POSTs (want 1), deferred %d (want 1), failed %d", n, outcome(e, "deferred"), outcome(e, "failed"))
	}
	f.deferredUnavailable(simpleBatch("patience", 2))
}
