package track

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

var t0 = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

// fixture is one test's world: real Kafka (testenv), real Redis
// (testenv), the Wompi simulator on a manual clock, and the dispatcher's
// hand-off store.
type fixture struct {
	t      testing.TB
	kafka  *testenv.Cluster
	redis  *testenv.RedisServer
	clock  *wompitest.ManualClock
	sim    *wompitest.Server
	wompi  *wompi.Client
	codec  *events.Codec
	topics events.Topics
	sub    *submitted.Store
	prefix string
	seq    int
}

type fixtureOpts struct {
	ownRedis bool
	sim      wompitest.Config
	pageSize int
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{t: t, kafka: testenv.Kafka(t), clock: wompitest.NewManualClock(t0)}
	if o.ownRedis {
		f.redis = testenv.RedisOwn(t)
	} else {
		f.redis = testenv.Redis(t)
	}
	f.prefix = f.redis.Prefix()
	f.topics = events.DefaultTopics()
	f.topics.Status = f.kafka.Topic(t, "status", 3)
	f.topics.BatchStatus = f.kafka.Topic(t, "batch-status", 3)
	cfg := o.sim
	cfg.Clock = f.clock
	if cfg.SettleJitter == 0 {
		cfg.SettleJitter = -1
	}
	if cfg.WebhookBackoff == 0 {
		cfg.WebhookBackoff = 10 * time.Millisecond
	}
	f.sim = wompitest.NewTestServer(t, cfg)
	var err error
	f.wompi, err = wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, PageSize: o.pageSize})
	if err != nil {
		t.Fatal(err)
	}
	f.codec, err = events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.sub = submitted.New(f.redis.Client(), f.prefix, 0)
	return f
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// hookedClient is a second client of c's Redis (address and database),
// with h on its commands, closed when the test ends: the Redis a test
// hands the engine or the gate to fail or count chosen commands.
func hookedClient(t testing.TB, c *redis.Client, h redis.Hook) *redis.Client {
	o := c.Options()
	cl := redis.NewClient(&redis.Options{Addr: o.Addr, DB: o.DB})
	t.Cleanup(func() { _ = cl.Close() })
	cl.AddHook(h)
	return cl
}

// rail is the tracker's Wompi rail over c, verifying webhooks with secret.
func (f *fixture) rail(c *wompi.Client, secret string) *wompi.Rail {
	return wompi.NewRail(c, wompi.RailConfig{EventsSecret: secret})
}

// engine starts an engine on the fixture and an HTTP server for its
// webhook handler (ops.NewServer timeouts, real loopback HTTP); each mut
// (nil: none) changes its Config in turn.
func (f *fixture) engine(muts ...func(*Config)) (*Engine, *httptest.Server) {
	f.t.Helper()
	cfg := Config{
		Kafka:      []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...)},
		Codec:      f.codec,
		Topics:     f.topics,
		Redis:      f.redis.Client(),
		Prefix:     f.prefix,
		Wompi:      f.rail(f.wompi, f.sim.Config().EventsSecret),
		Now:        f.clock.Now,
		Logger:     testLogger(f.t),
		Registerer: prometheus.NewRegistry(),
	}
	for _, mut := range muts {
		if mut != nil {
			mut(&cfg)
		}
	}
	e, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(e.Handler())
	srv.Config = NewWebhookServer("", e)
	srv.Start()
	f.t.Cleanup(func() { srv.Close(); e.Close() })
	return e, srv
}

// payee is one transaction to create; the account number suffix picks
// its outcome in the simulator (…007 fails with D07).
func (f *fixture) payee(account string) wompi.TransactionRequest {
	f.seq++
	return wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000001", BankID: wompitest.BankID("1007"),
		AccountType: "AHORROS", AccountNumber: account, Name: "Ana Pérez", Email: "ana@example.co",
		Amount: int64(100000 * f.seq), Reference: fmt.Sprintf("req-%s-%d", shortName(f.t), f.seq)}
}

func shortName(t testing.TB) string {
	n := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	if len(n) > 30 {
		n = n[len(n)-30:]
	}
	return n
}

type created struct {
	payoutID, batchID string
	txs               []wompi.Transaction
}

// sendPending posts, signed, the PENDING webhook of c's i-th transaction
// to the engine's server at url, and fails the test unless it is answered
// 200.
func (f *fixture) sendPending(url string, c created, i int) {
	f.t.Helper()
	tx := c.txs[i]
	body, sum := txWebhook(f.t, f.sim.Config().EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "PENDING", nil, t0)
	if code := post(f.t, url, body, sum); code != http.StatusOK {
		f.t.Fatalf("webhook of %s: %d", tx.Reference, code)
	}
}

// settleUnwatched settles c at the simulator with every webhook of it lost,
// lets e poll for three hours, and checks that each of c's requests ended
// at the final status Wompi holds for it (a request on no schedule
// stalls), with a log that never goes back (checkLog).
func (f *fixture) settleUnwatched(e *Engine, c created) {
	f.t.Helper()
	ctx := context.Background()
	f.sim.Advance(5 * time.Second)
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			f.t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkLog(f.t, evs)
	for _, tx := range c.txs {
		wt, err := f.wompi.PayoutTransaction(ctx, c.payoutID, tx.ID)
		if err != nil {
			f.t.Fatal(err)
		}
		st, _ := wompi.TransactionStatus(wt.Status).PayoutStatus()
		if !st.Final() {
			f.t.Fatalf("%s: Wompi holds %s, want it settled", tx.Reference, wt.Status)
		}
		if got := statusesOf(evs, tx.Reference); len(got) == 0 || got[len(got)-1] != st {
			f.t.Errorf("%s: statuses %v after Wompi settled it %s: the request stalls", tx.Reference, got, st)
		}
	}
}

// submit does what the dispatcher does: create the batch at Wompi, then
// record the hand-off (unless record is false: a hand-off lost with Redis).
func (f *fixture) submit(record bool, txs ...wompi.TransactionRequest) created {
	f.t.Helper()
	f.seq++
	batchID := fmt.Sprintf("batch-%s-%d", shortName(f.t), f.seq)
	return f.submitUnder(record, batchID, "key-"+batchID, txs...)
}

// submitUnder is submit with the batch reference and idempotency key
// given: two payouts under one reference (a POST whose answer was lost,
// then a second POST after a lookup behind the first).
func (f *fixture) submitUnder(record bool, batchID, key string, txs ...wompi.TransactionRequest) created {
	f.t.Helper()
	ctx := context.Background()
	res, err := f.wompi.CreatePayout(ctx, key, &wompi.CreatePayoutRequest{Reference: batchID,
		AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypeProviders, Transactions: txs})
	if err != nil {
		f.t.Fatal(err)
	}
	c := created{payoutID: res.PayoutID, batchID: batchID}
	var st []submitted.Transaction
	var total int64
	for tx, err := range f.wompi.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			f.t.Fatal(err)
		}
		c.txs = append(c.txs, tx)
		total += tx.AmountInCents
		st = append(st, submitted.Transaction{TransactionID: tx.ID, RequestID: tx.Reference, BatchID: batchID,
			PayoutID: res.PayoutID, AmountInCents: tx.AmountInCents, OriginAccountID: wompitest.AccountMain})
	}
	if len(c.txs) != len(txs) {
		f.t.Fatalf("created %d transactions, listed %d", len(txs), len(c.txs))
	}
	if record {
		if err := f.sub.Record(ctx, submitted.Payout{PayoutID: res.PayoutID, BatchID: batchID, OriginAccountID: wompitest.AccountMain,
			PaymentType: wompi.PaymentTypeProviders, TotalAmountInCents: total, TransactionCount: len(txs), SubmittedAt: f.clock.Now()},
			st, f.clock.Now()); err != nil {
			f.t.Fatal(err)
		}
		// A webhook of the new batch may have come first and put the
		// payout on the schedule FirstPollInterval later (enrollBatch),
		// which the hand-off's ZADD NX keeps: the payout is due now here,
		// as the tests of this package expect of a hand-off.
		if err := f.sub.Reschedule(ctx, res.PayoutID, f.clock.Now()); err != nil {
			f.t.Fatal(err)
		}
	}
	return c
}

func (f *fixture) waitHooks() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.sim.WaitWebhooks(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) statusEvents() []payout.StatusChange {
	f.t.Helper()
	var out []payout.StatusChange
	f.kafka.Settle(f.t, 5*time.Second, f.topics.Status) // best effort: see Settle
	for _, r := range f.kafka.ReadAll(f.t, f.topics.Status) {
		var sc payout.StatusChange
		if err := f.codec.DecodeStatusChange(r.Value, &sc); err != nil {
			f.t.Fatal(err)
		}
		if string(r.Key) != sc.RequestID {
			f.t.Fatalf("record key %q, requestId %q", r.Key, sc.RequestID)
		}
		out = append(out, sc)
	}
	return out
}

func (f *fixture) batchEvents() []payout.BatchStatusChange {
	f.t.Helper()
	var out []payout.BatchStatusChange
	f.kafka.Settle(f.t, 5*time.Second, f.topics.BatchStatus) // best effort: see Settle
	for _, r := range f.kafka.ReadAll(f.t, f.topics.BatchStatus) {
		var bc payout.BatchStatusChange
		if err := f.codec.DecodeBatchStatusChange(r.Value, &bc); err != nil {
			f.t.Fatal(err)
		}
		if string(r.Key) != bc.BatchID {
			f.t.Fatalf("record key %q, batchId %q", r.Key, bc.BatchID)
		}
		out = append(out, bc)
	}
	return out
}

// post sends a webhook body over real HTTP; checksum goes in
// X-Event-Checksum when not empty.
func post(t testing.TB, url string, body []byte, checksum string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if checksum != "" {
		req.Header.Set(wompi.HeaderEventChecksum, checksum)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// txWebhook signs a transaction.updated like Wompi does.
func txWebhook(t testing.TB, secret, txID, payoutID string, amount int64, status string, reason map[string]string, at time.Time) ([]byte, string) {
	t.Helper()
	tx := map[string]any{"id": txID, "payoutId": payoutID, "amountInCents": amount, "status": status, "currency": "COP",
		"payee": map[string]any{"name": "Ana", "accountNumber": "1234567890"}}
	if reason != nil {
		tx["failureReason"] = reason
	}
	body, sum, err := wompi.SignEvent(wompi.EventTransactionUpdated, map[string]any{"transaction": tx},
		[]string{"transaction.id", "transaction.status", "transaction.amountInCents"}, at, secret)
	if err != nil {
		t.Fatal(err)
	}
	return body, sum
}

func payoutWebhook(t testing.TB, secret, payoutID, reference string, amount int64, status string, at time.Time) ([]byte, string) {
	t.Helper()
	p := map[string]any{"id": payoutID, "reference": reference, "amountInCents": amount, "status": status,
		"paymentType": "PROVIDERS", "totalTransactions": 1, "currency": "COP"}
	body, sum, err := wompi.SignEvent(wompi.EventPayoutUpdated, map[string]any{"payout": p},
		[]string{"payout.id", "payout.status", "payout.amountInCents"}, at, secret)
	if err != nil {
		t.Fatal(err)
	}
	return body, sum
}

// transitions groups status events by (requestId, status).
func transitions(evs []payout.StatusChange) map[string][]payout.StatusChange {
	m := map[string][]payout.StatusChange{}
	for _, e := range evs {
		k := e.RequestID + "/" + string(e.Status)
		m[k] = append(m[k], e)
	}
	return m
}

// checkMonotonic fails if, for any request, the statuses in the log go
// backwards, or one (request, status) carries two eventIds, or an eventId
// is not the deterministic one.
func checkMonotonic(t testing.TB, evs []payout.StatusChange) {
	t.Helper()
	last := map[string]payout.Status{}
	ids := map[string]string{}
	for _, e := range evs {
		want := payout.EventID("status", e.RequestID, string(e.Status), deref(e.TransactionID))
		if e.EventID != want {
			t.Errorf("%s %s: eventId %s, want the deterministic %s", e.RequestID, e.Status, e.EventID, want)
		}
		k := e.RequestID + "/" + string(e.Status)
		if id, ok := ids[k]; ok && id != e.EventID {
			t.Errorf("%s has two eventIds %s and %s", k, id, e.EventID)
		}
		ids[k] = e.EventID
		if prev, ok := last[e.RequestID]; ok && prev != e.Status && !payout.CanTransition(prev, e.Status) {
			t.Errorf("%s regressed in the log: %s after %s", e.RequestID, e.Status, prev)
		}
		last[e.RequestID] = e.Status
	}
}

// fanOut posts each webhook to every target at once and answers 2xx only
// if all did: two replicas behind one sender.
func fanOut(t *testing.T, targets ...string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		codes := make([]int, len(targets))
		var wg sync.WaitGroup
		for i, u := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, u+r.URL.Path, bytes.NewReader(body))
				req.Header = r.Header.Clone()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					codes[i] = 599
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		sort.Ints(codes)
		w.WriteHeader(codes[len(codes)-1])
	}))
	t.Cleanup(srv.Close)
	return srv
}

// recorder keeps every webhook it forwards, to replay them later.
type recorder struct {
	mu    sync.Mutex
	next  http.Handler
	saved []savedHook
}

type savedHook struct {
	body []byte
	sum  string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.saved = append(r.saved, savedHook{body, req.Header.Get(wompi.HeaderEventChecksum)})
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.next.ServeHTTP(w, req)
}

func (r *recorder) hooks() []savedHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]savedHook(nil), r.saved...)
}

func mustFreePort(t *testing.T) int { return testenv.MustFreePort(t) }

func itoa(n int) string { return strconv.Itoa(n) }

func kafkaOpts(brokers ...string) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }), kgo.MetadataMinAge(50 * time.Millisecond)}
}

// startKafkaAt starts an in-process kfake broker on a given port (a Kafka
// "coming back" where the producer already points), with topics seeded.
func startKafkaAt(t *testing.T, port int, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(3, topics...), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// readStatus reads every status event of topic on the kfake cluster k.
func readStatus(t *testing.T, k *kfake.Cluster, f *fixture, topic string) []payout.StatusChange {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		want += o.Offset
		offsets[o.Partition] = kgo.NewOffset().AtStart()
	})
	var out []payout.StatusChange
	if want == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %d of %d records: %v", topic, len(out), want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var sc payout.StatusChange
			if err := f.codec.DecodeStatusChange(r.Value, &sc); err != nil {
				t.Fatal(err)
			}
			out = append(out, sc)
		})
	}
	return out
}

// pollRounds runs n poll rounds of e, the clock advanced by step before
// each, logging what each did.
func (f *fixture) pollRounds(e *Engine, n int, step time.Duration) {
	f.t.Helper()
	for range n {
		f.clock.Advance(step)
		res, err := e.PollOnce(context.Background())
		f.t.Logf("poll: %+v %v", res, err)
	}
}
