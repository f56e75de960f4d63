package dispatch

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// flakyReads answers a share of GETs with a 503 without forwarding them.
type flakyReads struct {
	base  http.RoundTripper
	share float64
	mu    sync.Mutex
	rng   *rand.Rand
	gets  int
	fails int
}

func (f *flakyReads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		return f.base.RoundTrip(req)
	}
	f.mu.Lock()
	f.gets++
	fail := f.rng.Float64() < f.share
	if fail {
		f.fails++
	}
	f.mu.Unlock()
	if !fail {
		return f.base.RoundTrip(req)
	}
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader(`{"status":503,"code":"SERVICE_UNAVAILABLE","message":"flaky"}`)),
		Request: req}, nil
}

// TestRecoveryRebuildsThroughFlakyReads: after a Redis loss the recovery
// reads every batch and every batch's transactions back from Wompi. With a
// fifth of those reads failing it must still finish, once, and its index
// must still catch a request Wompi already paid. Before the client repeated
// failed reads, a single failed page restarted the whole rebuild, so under
// steady errors the dispatcher never dispatched again.
func TestRecoveryRebuildsThroughFlakyReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	amounts := map[string]int64{}
	var early []string
	for i := range 30 {
		id := fmt.Sprintf("early-%d", i)
		amounts[id] = int64(100_000 + i)
		early = append(early, id)
	}
	amounts["late-1"] = 250_000

	// Thirty batches paid on a healthy Wompi.
	e := f.engine(nil)
	for _, id := range early {
		f.produce(f.topics.Batches, batch("b-"+id, amounts, id))
	}
	stop, _ := f.run(e)
	eventually(t, "the early batches submitted", func() bool { return outcome(e, "submitted") == len(early) })
	_ = stop()

	// Redis is lost; Wompi now fails one GET in five.
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyReads{base: f.tap, share: 0.2, rng: rand.New(rand.NewPCG(8, 8))}
	wc, err := wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey, PrincipalID: f.sim.Config().PrincipalID,
		HTTPClient: &http.Client{Transport: flaky, Timeout: 2 * time.Second}, ReadRetries: wompi.DefaultReadRetries, ReadBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e = f.engine(func(c *Config) { c.Wompi = wompi.NewRail(wc, wompi.RailConfig{}) })
	f.produce(f.topics.Batches, batch("b-late", amounts, "early-7", "late-1"))
	stop, _ = f.run(e)
	eventually(t, "the late batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()

	flaky.mu.Lock()
	gets, fails := flaky.gets, flaky.fails
	flaky.mu.Unlock()
	if fails == 0 || gets < len(early) {
		t.Fatalf("the rebuild met %d failed reads in %d: the test exercised nothing", fails, gets)
	}
	if n := testutil.ToFloat64(e.m.recoveries); n != 1 {
		t.Fatalf("recoveries started: %v, want 1 (a failed read restarted the rebuild)", n)
	}
	f.noDoublePayment()
	if le, _ := f.sim.LedgerEntry("early-7"); le.Accepted != 1 {
		t.Fatalf("early-7 ledger %+v: the rebuilt index missed it and it was paid again", le)
	}
	if le, _ := f.sim.LedgerEntry("late-1"); le.Accepted != 1 {
		t.Fatalf("late-1 ledger %+v: want paid once", le)
	}
	t.Logf("rebuild through %d GETs, %d of them failed", gets, fails)
}
