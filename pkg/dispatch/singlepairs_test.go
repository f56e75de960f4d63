package dispatch

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// conflictThenApply answers the first create 409 at once and has the
// provider apply it delay later (a create still being processed).
type conflictThenApply struct {
	delay time.Duration
	once  sync.Once
	sent  sync.WaitGroup
}

func (c *conflictThenApply) RoundTrip(req *http.Request) (*http.Response, error) {
	first := false
	if req.Method == http.MethodPost {
		c.once.Do(func() { first = true })
	}
	if !first {
		return http.DefaultTransport.RoundTrip(req)
	}
	if err := forwardLater(http.DefaultTransport, req, c.delay, &c.sent); err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusConflict, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"message":"payment in progress"}`)), Request: req}, nil
}

// A create answered 409 after a lookup that said absent, and applied by
// the provider a moment later: the 409 is an unknown outcome, so the next
// lookup waits RecoveryGrace and finds the payout. Handled as "it shows up
// shortly" (a short backoff, then a lookup and a POST), the payee was paid
// twice. (Found by a helper review.)
func TestConflictThenAppliedIsNotRepeated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	wep := singleRails(t)[1](t)
	tr := &conflictThenApply{delay: time.Second}
	wep.client = wep.sim.(*weptest.Server).Client(wepayout.Config{NotificationURL: sink(t), HTTPClient: &http.Client{Transport: tr}})
	b := singleBatch(wep, "conflict", 1)
	e := wep.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	tr.sent.Wait()
	if n := wep.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s accepted %d times, want once", b.Transactions[0].RequestID, n)
	}
}

// lateWhen forwards a POST late (and answers a timeout at once) while on
// is set.
type lateWhen struct {
	on    atomic.Bool
	delay time.Duration
	sent  sync.WaitGroup
}

func (l *lateWhen) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !l.on.Load() {
		return http.DefaultTransport.RoundTrip(req)
	}
	l.on.Store(false)
	if err := forwardLater(http.DefaultTransport, req, l.delay, &l.sent); err != nil {
		return nil, err
	}
	return nil, context.DeadlineExceeded
}

// Replica R1 is cut off from Redis (its renewals fail without an answer);
// it still sends a POST within leaseFresh's limit, which lands within
// RecoveryGrace of its start. Replica R2 takes the batch over once the
// lease has run out and waits before its first lookup: RecoveryGrace +
// LeaseTTL was shorter than the fence allows when RecoveryGrace is far
// above HTTPTimeout (here 6 s against 1 s), and R2 paid the payee again.
// The wait now covers recoveryWait too. (Found by a helper review.)
func TestTakeoverWaitsForACutOffReplicasLastPost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	wep := singleRails(t)[1](t)
	late := &lateWhen{delay: 5800 * time.Millisecond}
	c1 := wep.sim.(*weptest.Server).Client(wepayout.Config{NotificationURL: sink(t), HTTPClient: &http.Client{Transport: late}})
	b := singleBatch(wep, "takeover", 2)
	var cut atomic.Bool
	timing := func(c *Config) {
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 6*time.Second, 1500*time.Millisecond
		c.SingleConcurrency = 1
		c.SingleRatePerSecond, c.SingleRateBurst = 1000, 100
	}
	e2 := wep.engine(f, timing)
	r1 := wep
	r1.client = c1
	e1 := r1.engine(f, func(c *Config) { timing(c); c.Redis.AddHook(cutRedis{&cut}) })
	var posts atomic.Int32
	e2done := make(chan error, 1)
	e1.beforePost = func(string) {
		if posts.Add(1) == 2 {
			cut.Store(true)
			go func() { bb := b; e2done <- e2.process(context.Background(), &bb, nil, testLogger()) }()
			time.Sleep(4700 * time.Millisecond) // inside the fence: 0.5 + 6 - 1 = 5.5 s
			late.on.Store(true)
		}
	}
	e1done := make(chan error, 1)
	go func() { bb := b; e1done <- e1.process(context.Background(), &bb, nil, testLogger()) }()
	select {
	case err := <-e2done:
		t.Logf("R2: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("R2 did not finish")
	}
	t.Logf("R1: %v", <-e1done)
	late.sent.Wait()
	for _, tx := range b.Transactions {
		if n := wep.sim.Accepted(tx.RequestID); n != 1 {
			t.Errorf("%s accepted %d times, want once", tx.RequestID, n)
		}
	}
}
