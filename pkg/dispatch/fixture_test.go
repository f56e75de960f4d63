package dispatch

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// testStart is 10:00 in Bogota: far from a day boundary.
// bogota is the Wompi rail's business-day zone: the fixtures' batches are
// Wompi's unless they name another rail.
var bogota = rail.Location(rail.Wompi)

var testStart = time.Date(2026, 11, 21, 10, 0, 0, 0, bogota)

// fixture is one test's own topics, Redis prefix (or server), simulator
// and clock, on the binary's shared broker: the package's tests are
// waiting, not computing, most of their time, so each runs in parallel
// (t.Parallel) with the others. Tests on the shared Redis Cluster stay
// serial (some restart its masters), and so do the few that measure a
// wall-clock window the others' load would skew (each says so).
type fixture struct {
	t      testing.TB
	kafka  *testenv.Cluster
	redis  *testenv.RedisServer
	topics events.Topics
	codec  *events.Codec
	group  string
	clock  *wompitest.ManualClock
	sim    *wompitest.Server
	tap    *tap
}

type fixtureOpt struct {
	ownRedis   bool // a private server, for FLUSHALL
	partitions int
	sim        wompitest.Config
	noEpoch    bool // leave Redis empty: the first batch runs the recovery
	deferred   int  // the deferred topic's partitions (default 1)
	kfake      bool // on kfake whatever the environment says: for its fault injection
}

func newFixture(t testing.TB, o fixtureOpt) *fixture {
	t.Helper()
	if o.partitions == 0 {
		o.partitions = 2
	}
	var kopts []testenv.KafkaOption
	if o.kfake {
		kopts = append(kopts, testenv.WithKFake())
	}
	f := &fixture{t: t, kafka: testenv.Kafka(t, kopts...), clock: wompitest.NewManualClock(testStart)}
	if o.ownRedis {
		f.redis = testenv.RedisOwn(t)
	} else {
		f.redis = testenv.Redis(t)
	}
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.codec = c
	f.topics = events.Topics{
		Requests:         f.kafka.Topic(t, "requests", 1),
		Batches:          f.kafka.Topic(t, "batches", o.partitions),
		BatchesDeferred:  f.kafka.Topic(t, "deferred", max(1, o.deferred)),
		Status:           f.kafka.Topic(t, "status", 2),
		BatchStatus:      f.kafka.Topic(t, "batch-status", 1),
		RequestsDLQ:      f.kafka.Topic(t, "dlq", 1),
		DispatcherStarts: f.kafka.Topic(t, "starts", 1),
	}
	f.group = "dispatch-" + f.topics.Batches
	o.sim.Clock = f.clock
	f.sim = wompitest.NewTestServer(t, o.sim)
	f.tap = &tap{base: http.DefaultTransport}
	if !o.noEpoch {
		f.seedEpoch()
	}
	return f
}

// seedEpoch writes a ready, complete epoch: the state a finished recovery
// leaves on empty rails. Tests about recovery leave it out.
func (f *fixture) seedEpoch() {
	if err := f.redis.Client().HSet(context.Background(), f.redis.Prefix()+"{dispatch}:epoch", "id", "e0", "state", "ready", "layout", epochLayout, "complete", "e0",
		"server", redisRunID(f.t, f.redis.Client())).Err(); err != nil {
		f.t.Fatal(err)
	}
}

// redisRunID is the run id of the Redis process rdb talks to, as an epoch
// is stamped with it (luaServer).
func redisRunID(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	t.Fatal("INFO server has no run_id")
	return ""
}

func testLogger() *slog.Logger {
	if os.Getenv("DISPATCH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// engine builds an engine with test timings on the fixture's components.
func (f *fixture) engine(mutate func(*Config)) *Engine {
	f.t.Helper()
	cfg := Config{
		Kafka:         []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...), kgo.HeartbeatInterval(200 * time.Millisecond)},
		Codec:         f.codec,
		Topics:        f.topics,
		Group:         f.group,
		Redis:         f.redis.NewClient(f.t),
		Prefix:        f.redis.Prefix(),
		Wompi:         wompi.NewRail(f.sim.Client(&http.Client{Transport: f.tap}), wompi.RailConfig{}),
		HTTPTimeout:   2 * time.Second,
		RecoveryGrace: 3 * time.Second,
		// Each test starts on a new status epoch marker: no loss grace
		// (pkg/track tests it).
		StatusLossGrace: -1,
		RatePerSecond:   10000,
		RateBurst:       100,
		LeaseTTL:        2 * time.Second,
		HealthInterval:  20 * time.Millisecond,
		RetryBase:       5 * time.Millisecond,
		RetryMax:        50 * time.Millisecond,
		PollInterval:    20 * time.Millisecond,
		Now:             f.clock.Now,
		Logger:          testLogger(),
		Registerer:      prometheus.NewRegistry(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(e.Close)
	return e
}

// processUntilEnded runs attempts of b on e, each from b as read (a retry
// in place of its record), until one ends the batch; it fails when none of
// the first tries does.
func (f *fixture) processUntilEnded(e *Engine, b payout.Batch, tries int) {
	f.t.Helper()
	var err error
	for n := 1; n <= tries; n++ {
		b2 := b
		if err = e.process(context.Background(), &b2, nil, testLogger()); err == nil {
			return
		}
		f.t.Logf("attempt %d: %v", n, err)
	}
	f.t.Fatalf("the batch never ends (%d attempts): %v", tries, err)
}

// run starts e; stop drains it and returns Run's error; done is closed
// when Run returns, and stop then returns its error at once.
func (f *fixture) run(e *Engine) (stop func() error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err error
	go func() { err = e.Run(ctx); close(ch) }()
	stop = func() error {
		cancel()
		select {
		case <-ch:
		case <-time.After(60 * time.Second):
			f.t.Error("engine did not drain within 60s")
		}
		return err
	}
	f.t.Cleanup(func() { _ = stop() })
	return stop, ch
}

var seq atomic.Int64

// batch builds a valid batch of AccountMain paying the given requests.
func batch(name string, amounts map[string]int64, order ...string) payout.Batch {
	sum := sha1.Sum([]byte(name + fmt.Sprint(seq.Add(1))))
	b := payout.Batch{BatchID: "b-" + hex.EncodeToString(sum[:]), OriginAccountID: wompitest.AccountMain,
		PaymentType: payout.PaymentProviders, CreatedAt: testStart}
	for i, rid := range order {
		b.Transactions = append(b.Transactions, payout.Transaction{RequestID: rid, AmountInCents: amounts[rid], RequestedAt: testStart,
			Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalCC, LegalID: fmt.Sprintf("10%08d", i+1), Name: "Payee " + rid,
				Email: "payee@example.co", BankCode: "1007", AccountType: payout.AccountAhorros, AccountNumber: fmt.Sprintf("4%010d", i+1)}})
		b.TotalAmountInCents += amounts[rid]
	}
	b.TransactionCount = int32(len(b.Transactions))
	return b
}

// simpleBatch pays n requests of 100,000 cents named prefix-0..n-1.
func simpleBatch(prefix string, n int) payout.Batch {
	amounts := map[string]int64{}
	var order []string
	for i := range n {
		rid := fmt.Sprintf("%s-%d", prefix, i)
		amounts[rid] = 100_000
		order = append(order, rid)
	}
	return batch(prefix, amounts, order...)
}

func (f *fixture) produce(topic string, bs ...payout.Batch) {
	f.t.Helper()
	var recs []*kgo.Record
	for i := range bs {
		v, err := f.codec.AppendBatch(nil, &bs[i])
		if err != nil {
			f.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(bs[i].BatchID), Value: v})
	}
	f.kafka.Produce(f.t, topic, recs...)
}

func (f *fixture) statuses() []payout.StatusChange {
	f.t.Helper()
	var out []payout.StatusChange
	f.kafka.Settle(f.t, 5*time.Second, f.topics.Status) // best effort: see Settle
	for _, r := range f.kafka.ReadAll(f.t, f.topics.Status) {
		var s payout.StatusChange
		if err := f.codec.DecodeStatusChange(r.Value, &s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (f *fixture) batchStatuses() []payout.BatchStatusChange {
	f.t.Helper()
	var out []payout.BatchStatusChange
	f.kafka.Settle(f.t, 5*time.Second, f.topics.BatchStatus) // best effort: see Settle
	for _, r := range f.kafka.ReadAll(f.t, f.topics.BatchStatus) {
		var s payout.BatchStatusChange
		if err := f.codec.DecodeBatchStatusChange(r.Value, &s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// byStatus indexes status events: requestId -> status -> events.
func byStatus(ss []payout.StatusChange) map[string]map[payout.Status][]payout.StatusChange {
	m := map[string]map[payout.Status][]payout.StatusChange{}
	for _, s := range ss {
		if m[s.RequestID] == nil {
			m[s.RequestID] = map[payout.Status][]payout.StatusChange{}
		}
		m[s.RequestID][s.Status] = append(m[s.RequestID][s.Status], s)
	}
	return m
}

// eventually polls cond every 20 ms until it holds, failing after 30 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func outcome(e *Engine, o string) int {
	return int(testutil.ToFloat64(e.m.batches.WithLabelValues(o)))
}

// noDoublePayment checks the simulator's audit ledger.
func (f *fixture) noDoublePayment() {
	f.t.Helper()
	if d := f.sim.Duplicates(); len(d) > 0 {
		f.t.Fatalf("transaction references accepted more than once: %v", d)
	}
	if d := f.sim.DuplicateBatches(); len(d) > 0 {
		f.t.Fatalf("batch references accepted more than once: %v", d)
	}
}

// tap wraps the HTTP transport to Wompi: it records every POST /payouts
// (wall time and idempotency key) and injects faults chosen per POST.
type tap struct {
	base  http.RoundTripper
	mu    sync.Mutex
	posts []tapPost
	fault func(n int) fault // n counts POSTs from 1
	// onPost, when set, runs before each POST's fault is chosen (for
	// example to move the injected clock between attempts).
	onPost func(n int)
	// afterPost, when set, runs once a forwarded POST was answered, before
	// the dispatcher reads the answer.
	afterPost func(n int)
	// lateBy is how long after it was sent a faultLateApply POST reaches
	// Wompi; late is closed once it has.
	lateBy time.Duration
	late   chan struct{}
}

type tapPost struct {
	at  time.Time
	key string
	ref string
}

type fault int

const (
	faultNone          fault = iota
	fault503                 // answer 503 without forwarding
	faultCommitTimeout       // forward (the batch is created), then never answer
	fault401                 // answer 401 (a rotated API key) without forwarding
	fault400                 // answer a 400 validation refusal without forwarding
	fault409                 // answer 409 EXC_022 without forwarding (a key Wompi holds for a payout it does not list)
	faultCommit400           // forward (the batch is created), then answer a 400: the answer to a transport replay
	faultLateApply           // never answer; forward the POST lateBy after it was sent: applied after its client gave up
	faultBalance400          // answer a 400 EXC_008 (insufficient balance: refused for now) without forwarding
	fault415                 // answer a 415 (refused for good: Permanent) without forwarding
)

func (t *tap) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/payouts") {
		return t.base.RoundTrip(req)
	}
	t.mu.Lock()
	t.posts = append(t.posts, tapPost{at: time.Now(), key: req.Header.Get(wompi.HeaderIdempotencyKey)})
	n := len(t.posts)
	fn, hook := t.fault, t.onPost
	t.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	f := faultNone
	if fn != nil {
		f = fn(n)
	}
	switch f {
	case fault503:
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(`{"status":503,"code":"SERVICE_UNAVAILABLE","message":"injected"}`)),
			Request: req}, nil
	case faultLateApply:
		body, _ := io.ReadAll(req.Body)
		req.Body.Close()
		late := req.Clone(context.Background())
		late.Body, late.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		go func() {
			defer close(t.late)
			time.Sleep(t.lateBy)
			if resp, err := t.base.RoundTrip(late); err == nil {
				resp.Body.Close()
			}
		}()
		<-req.Context().Done()
		return nil, req.Context().Err()
	case fault401, fault400, fault409, faultBalance400, fault415:
		if req.Body != nil {
			req.Body.Close()
		}
		body, code := `{"status":401,"code":"UNAUTHORIZED","message":"injected: invalid api key"}`, http.StatusUnauthorized
		switch f {
		case fault400:
			body, code = `{"status":400,"code":"VALIDATION_ERROR","message":"injected: dispersionDatetime must be at least the next day"}`, http.StatusBadRequest
		case fault409:
			body, code = `{"status":409,"code":"EXC_022","message":"injected: idempotency-key was already used"}`, http.StatusConflict
		case faultBalance400:
			body, code = `{"status":400,"code":"EXC_008","message":"injected: insufficient balance"}`, http.StatusBadRequest
		case fault415:
			body, code = `{"status":415,"code":"UNSUPPORTED_MEDIA_TYPE","message":"injected"}`, http.StatusUnsupportedMediaType
		}
		return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	case faultCommit400:
		resp, err := t.base.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(`{"status":400,"code":"VALIDATION_ERROR","message":"injected: refused on replay"}`)),
			Request: req}, nil
	case faultCommitTimeout:
		resp, err := t.base.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	resp, err := t.base.RoundTrip(req)
	t.mu.Lock()
	after := t.afterPost
	t.mu.Unlock()
	if err == nil && after != nil {
		after(n)
	}
	return resp, err
}

func (t *tap) snapshot() []tapPost {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]tapPost(nil), t.posts...)
}

// checkLifecycles asserts the status topic's contract: after dedupe by
// eventId, each requestId's events follow one forward-only path of the
// lifecycle and carry at most one final status.
func (f *fixture) checkLifecycles() {
	f.t.Helper()
	if err := payout.CheckLifecycles(f.statuses()); err != nil {
		f.t.Fatal(err)
	}
}

// duplicateCopies reads the DLQ: requestId -> batch id of every record with
// error=DUPLICATE_REQUEST (failing on any other DLQ record).
func (f *fixture) duplicateCopies() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	f.kafka.Settle(f.t, 5*time.Second, f.topics.RequestsDLQ) // best effort: see Settle
	for _, r := range f.kafka.ReadAll(f.t, f.topics.RequestsDLQ) {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[events.HeaderError] != string(payout.ReasonDuplicateRequest) {
			f.t.Fatalf("DLQ record %q with error %q: only duplicate copies were expected", r.Key, h[events.HeaderError])
		}
		var req payout.Request
		if err := f.codec.DecodeRequest(r.Value, &req); err != nil || req.RequestID != string(r.Key) {
			f.t.Fatalf("DLQ copy %q does not decode as its request: %v", r.Key, err)
		}
		if _, dup := out[string(r.Key)]; dup {
			f.t.Fatalf("copy of %s dead-lettered twice", r.Key)
		}
		out[string(r.Key)] = h[HeaderBatchID]
	}
	return out
}
