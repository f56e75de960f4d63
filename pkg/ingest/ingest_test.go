package ingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

var testNow = time.Date(2026, 11, 21, 10, 0, 0, 0, rail.Location(rail.Wompi))

func newCodec(t testing.TB) *events.Codec {
	t.Helper()
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request builds a valid request; kind 0 immediate, 1 scheduled, 2 recurring.
func request(i int, account string, kind int) payout.Request {
	r := payout.Request{
		RequestID:       fmt.Sprintf("req-%06d", i),
		OriginAccountID: account,
		PaymentType:     payout.PaymentProviders,
		Beneficiary: payout.Beneficiary{
			LegalIDType: payout.LegalCC, LegalID: "1000000" + strconv.Itoa(100+i%900), Name: "Payee " + strconv.Itoa(i),
			Email: "payee" + strconv.Itoa(i) + "@example.co", BankCode: "1007", AccountType: payout.AccountAhorros,
			AccountNumber: fmt.Sprintf("%011d", 10000000+i),
		},
		AmountInCents: int64(100_000 + i),
		Currency:      "COP",
		RequestedAt:   testNow,
	}
	tomorrow := testNow.Add(26 * time.Hour).Truncate(time.Minute)
	switch kind {
	case 1:
		r.DispersionDatetime = &tomorrow
	case 2:
		r.DispersionDatetime = &tomorrow
		r.Recurring = &payout.Recurring{Interval: payout.IntervalMonth, Months: 3}
	}
	return r
}

type fixture struct {
	t       *testing.T
	kafka   *testenv.Cluster
	redis   *testenv.RedisServer
	topics  events.Topics
	codec   *events.Codec
	group   string
	engines sync.WaitGroup
}

// newFixture sets up topics on the test Kafka (a real broker in CI), or on
// kfake when opts say so: tests that inject faults through kfake's control
// functions pass testenv.WithKFake, so they run in CI too.
func newFixture(t *testing.T, partitions int, opts ...testenv.KafkaOption) *fixture {
	k := testenv.Kafka(t, opts...)
	f := &fixture{t: t, kafka: k, redis: testenv.Redis(t), codec: newCodec(t)}
	f.topics = events.Topics{
		Requests:         k.Topic(t, "requests", partitions),
		Batches:          k.Topic(t, "batches", 3),
		BatchesDeferred:  k.Topic(t, "deferred", 1),
		DispatcherStarts: k.Topic(t, "starts", 1),
		Status:           k.Topic(t, "status", 3),
		BatchStatus:      k.Topic(t, "batch-status", 1),
		RequestsDLQ:      k.Topic(t, "dlq", 1),
	}
	f.group = "ingest-" + f.topics.Requests
	return f
}

func (f *fixture) engine(txnID string, mutate func(*Config)) *Engine {
	cfg := Config{
		Kafka:           []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...)},
		Codec:           f.codec,
		Topics:          f.topics,
		Group:           f.group,
		TransactionalID: txnID,
		// Each engine its own client, as replicas have.
		Redis:           f.redis.NewClient(f.t),
		RedisPrefix:     f.redis.Prefix(),
		MaxTransactions: 50,
		MaxWait:         300 * time.Millisecond,
		MaxWindow:       300 * time.Millisecond,
		Logger:          slog.New(slog.DiscardHandler),
	}
	// Requests are dated testNow; validation needs "now" before tomorrow's
	// dispersion: pin the validation day to testNow's day.
	cfg.Now = func() time.Time { return testNow.Add(time.Since(start)) }
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

var start = time.Now()

// run starts e and returns a stop function that drains it gracefully.
func (f *fixture) run(e *Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					f.t.Errorf("engine: %v", err)
				}
			case <-time.After(60 * time.Second):
				f.t.Error("engine did not drain within 60s")
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) produce(reqs []payout.Request, raw ...*kgo.Record) {
	var recs []*kgo.Record
	for i := range reqs {
		v, err := f.codec.AppendRequest(nil, &reqs[i])
		if err != nil {
			f.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(reqs[i].RequestID), Value: v})
	}
	recs = append(recs, raw...)
	f.kafka.Produce(f.t, f.topics.Requests, recs...)
}

// outcome is what the committed output topics say.
type outcome struct {
	batchOf  map[string][]string // requestId -> ids of committed batches that hold it
	batches  map[string]payout.Batch
	statuses map[string][]payout.StatusChange
	dlq      []*kgo.Record
}

func (f *fixture) read(wantStatuses int) outcome {
	f.t.Helper()
	statusRecs := f.kafka.ReadAtLeast(f.t, f.topics.Status, wantStatuses, 60*time.Second)
	o := outcome{batchOf: map[string][]string{}, batches: map[string]payout.Batch{}, statuses: map[string][]payout.StatusChange{}}
	for _, r := range statusRecs {
		var s payout.StatusChange
		if err := f.codec.DecodeStatusChange(r.Value, &s); err != nil {
			f.t.Fatal(err)
		}
		// A request's events share its key, so they share a partition and
		// keep their order there.
		if string(r.Key) != s.RequestID {
			f.t.Errorf("status event %s of %s is keyed %q", s.Status, s.RequestID, r.Key)
		}
		o.statuses[s.RequestID] = append(o.statuses[s.RequestID], s)
	}
	// A window's commit markers reach the status, batches and DLQ
	// partitions one by one on a real broker: wait for them all before
	// reading the other two topics.
	if !f.kafka.Settle(f.t, 30*time.Second, f.topics.Batches, f.topics.RequestsDLQ) {
		f.t.Fatal("the engine is idle but a transaction stays pending")
	}
	for _, r := range f.kafka.ReadAll(f.t, f.topics.Batches) {
		var b payout.Batch
		if err := f.codec.DecodeBatch(r.Value, &b); err != nil {
			f.t.Fatal(err)
		}
		if _, dup := o.batches[b.BatchID]; dup {
			f.t.Errorf("batch id %s committed twice", b.BatchID)
		}
		o.batches[b.BatchID] = b
		for _, tx := range b.Transactions {
			o.batchOf[tx.RequestID] = append(o.batchOf[tx.RequestID], b.BatchID)
		}
	}
	o.dlq = f.kafka.ReadAll(f.t, f.topics.RequestsDLQ)
	return o
}

// assertExactlyOnce checks every valid request is in exactly one committed
// batch with exactly one BATCHED event, and every invalid one has exactly
// one REJECTED event and no batch.
func (o outcome) assertExactlyOnce(t *testing.T, valid, invalid []string) {
	t.Helper()
	for _, id := range valid {
		if n := len(o.batchOf[id]); n != 1 {
			t.Errorf("valid %s is in %d committed batches", id, n)
		}
		st := o.statuses[id]
		if len(st) != 1 || st[0].Status != payout.StatusBatched || st[0].BatchID == nil || len(o.batchOf[id]) == 0 || *st[0].BatchID != o.batchOf[id][0] {
			t.Errorf("valid %s has statuses %+v", id, st)
		}
	}
	for _, id := range invalid {
		if n := len(o.batchOf[id]); n != 0 {
			t.Errorf("invalid %s is in %d batches", id, n)
		}
		st := o.statuses[id]
		if len(st) != 1 || st[0].Status != payout.StatusRejected || st[0].ReasonCode == nil || st[0].Source != payout.SourceIngest {
			t.Errorf("invalid %s has statuses %+v", id, st)
		}
	}
	total := 0
	for _, b := range o.batches {
		total += len(b.Transactions)
	}
	if total != len(valid) {
		t.Errorf("committed batches hold %d transactions, want %d", total, len(valid))
	}
}

func mixed(n, offset int) (reqs []payout.Request, valid, invalid []string) {
	accounts := []string{"acc-a", "acc-b", "acc-c"}
	for i := offset; i < offset+n; i++ {
		r := request(i, accounts[i%3], i%5%3)
		if i%7 == 0 {
			r.Beneficiary.AccountNumber = "0000000"
			invalid = append(invalid, r.RequestID)
		} else {
			valid = append(valid, r.RequestID)
		}
		reqs = append(reqs, r)
	}
	return reqs, valid, invalid
}

func TestExactlyOnceAcrossPartitions(t *testing.T) {
	f := newFixture(t, 4)
	reqs, valid, invalid := mixed(700, 0)
	f.produce(reqs)
	stop := f.run(f.engine("ingest-eo-1", nil))
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, valid, invalid)
	for _, id := range invalid {
		if c := *o.statuses[id][0].ReasonCode; c != string(payout.ReasonInvalidAccountNumber) {
			t.Fatalf("%s rejected for %s", id, c)
		}
	}
}

func TestCrashMidTransactionThenRestart(t *testing.T) {
	f := newFixture(t, 3)
	reqs, valid, invalid := mixed(600, 0)
	f.produce(reqs)
	// A long window, and batches closed by count, so the first instance has
	// produced batches into an open transaction when it dies.
	a := f.engine("ingest-crash", func(c *Config) { c.MaxWait, c.MaxWindow, c.MaxTransactions = time.Minute, time.Minute, 10 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	// Wait until uncommitted batch records are on the broker.
	raw := f.kafka.Client(t, kgo.ConsumeTopics(f.topics.Batches), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	uncommitted := 0
	for uncommitted == 0 && pctx.Err() == nil {
		uncommitted += raw.PollFetches(pctx).NumRecords()
	}
	pcancel()
	if uncommitted == 0 {
		t.Fatal("the first instance never produced a batch")
	}
	// Crash: the client goes away without ending its transaction.
	a.sess.Client().Close()
	<-done
	// Its claims in the seen index survive the crash: the next instance
	// reads the same records again and must find them its own, not copies.
	claimed, err := f.redis.Client().Keys(context.Background(), f.redis.Prefix()+"ingest:*").Result()
	if err != nil || len(claimed) == 0 {
		t.Fatalf("no claim in the seen index before the restart (%d keys, %v)", len(claimed), err)
	}

	b := f.engine("ingest-crash", nil) // same transactional id: fences the dead one
	stop := f.run(b)
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, valid, invalid)
	if len(o.dlq) != 0 {
		t.Fatalf("%d records read again after the crash were dead-lettered", len(o.dlq))
	}
}

func TestRebalanceMidStream(t *testing.T) {
	f := newFixture(t, 6)
	first, valid1, invalid1 := mixed(600, 0)
	second, valid2, invalid2 := mixed(600, 600)
	f.produce(first)
	stopA := f.run(f.engine("ingest-rb-a", nil))
	f.kafka.ReadAtLeast(t, f.topics.Status, 100, 60*time.Second)
	stopB := f.run(f.engine("ingest-rb-b", nil)) // joins: the group rebalances
	f.produce(second)
	o := f.read(len(first) + len(second))
	stopA() // leaves: another rebalance, while B keeps going
	stopB()
	o.assertExactlyOnce(t, append(valid1, valid2...), append(invalid1, invalid2...))
}

func TestBadBytesGoToDLQAndPartitionKeepsFlowing(t *testing.T) {
	f := newFixture(t, 1) // one partition: bad records sit between good ones
	good, valid, _ := mixed(20, 1)
	valid = valid[:0]
	for i := range good {
		good[i].Beneficiary.AccountNumber = "12345678"
		valid = append(valid, good[i].RequestID)
	}
	enc, _ := f.codec.AppendRequest(nil, &good[0])
	unknownFP := append([]byte{0xC3, 0x01}, make([]byte, 8)...)
	binary.LittleEndian.PutUint64(unknownFP[2:], 0xDEADBEEF)
	unknownFP = append(unknownFP, enc[10:]...)
	bad := []*kgo.Record{
		{Key: []byte("garbage"), Value: []byte("not avro at all")},
		{Key: []byte("unknown-fp"), Value: unknownFP},
		{Key: []byte("truncated"), Value: enc[:len(enc)/2]},
		{Key: []byte("empty"), Value: nil},
		{Key: []byte("not a request id"), Value: []byte{0xC3}},
	}
	f.produce(good[:10], bad...)
	f.produce(good[10:])
	stop := f.run(f.engine("ingest-dlq", nil))
	o := f.read(len(good) + 4)
	stop()
	o.assertExactlyOnce(t, valid, nil)
	if len(o.dlq) != len(bad) {
		t.Fatalf("DLQ has %d records, want %d", len(o.dlq), len(bad))
	}
	// Each key is a valid requestId: the marketplace hears of each
	// (issue 15 item 4); a key that is not one gets the DLQ record only.
	wantCode := map[string]payout.Reason{"garbage": ReasonUndecodable, "unknown-fp": ReasonSchemaNotFound, "truncated": ReasonUndecodable, "empty": ReasonUndecodable}
	for key, code := range wantCode {
		st := o.statuses[key]
		if len(st) != 1 || st[0].Status != payout.StatusRejected || st[0].ReasonCode == nil || *st[0].ReasonCode != string(code) {
			t.Errorf("dead-lettered %s has statuses %+v, want one REJECTED %s", key, st, code)
		}
	}
	if st := o.statuses["not a request id"]; len(st) != 0 {
		t.Errorf("a key that is no requestId got statuses %+v", st)
	}
	for i, r := range o.dlq {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if string(r.Key) != string(bad[i].Key) || string(r.Value) != string(bad[i].Value) {
			t.Errorf("DLQ record %d does not keep the original key and bytes", i)
		}
		if h["error"] == "" || h["source-topic"] != f.topics.Requests || h["source-partition"] != "0" || h["source-offset"] != strconv.Itoa(10+i) {
			t.Errorf("DLQ record %d headers = %v", i, h)
		}
	}
}

func TestBatchLimitsAndSchedules(t *testing.T) {
	f := newFixture(t, 2)
	var reqs []payout.Request
	for i := 0; i < 40; i++ {
		reqs = append(reqs, request(i, "acc-a", i%3)) // immediate, scheduled, recurring mixed
	}
	for i := 40; i < 52; i++ {
		r := request(i, "acc-b", 0)
		r.AmountInCents = 400_000 // 3 fit under the 1,300,000 cap, the 4th closes the batch
		reqs = append(reqs, r)
	}
	f.produce(reqs)
	stop := f.run(f.engine("ingest-limits", func(c *Config) { c.MaxTransactions, c.MaxAmountCents = 5, 1_300_000 }))
	o := f.read(len(reqs))
	stop()
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.RequestID)
	}
	o.assertExactlyOnce(t, ids, nil)
	byID := map[string]payout.Request{}
	for _, r := range reqs {
		byID[r.RequestID] = r
	}
	for _, b := range o.batches {
		if len(b.Transactions) > 5 || int(b.TransactionCount) != len(b.Transactions) {
			t.Errorf("batch %s holds %d transactions (count %d), max 5", b.BatchID, len(b.Transactions), b.TransactionCount)
		}
		if b.TotalAmountInCents > 1_300_000 {
			t.Errorf("batch %s totals %d, above the cap", b.BatchID, b.TotalAmountInCents)
		}
		var sum int64
		for _, tx := range b.Transactions {
			r := byID[tx.RequestID]
			sum += tx.AmountInCents
			if r.OriginAccountID != b.OriginAccountID || (r.DispersionDatetime == nil) != (b.Schedule.DispersionDatetime == nil) || (r.Recurring == nil) != (b.Schedule.Recurring == nil) {
				t.Errorf("batch %s mixes %s with a different account or schedule", b.BatchID, tx.RequestID)
			}
		}
		if sum != b.TotalAmountInCents {
			t.Errorf("batch %s total %d, transactions sum %d", b.BatchID, b.TotalAmountInCents, sum)
		}
		if !payout.ValidReference(b.BatchID) {
			t.Errorf("batch id %q is not a valid Wompi reference", b.BatchID)
		}
	}
}

func TestWindowAgeClosesSmallBatch(t *testing.T) {
	f := newFixture(t, 1)
	reqs := []payout.Request{request(1, "acc-a", 0), request(2, "acc-a", 0)}
	f.produce(reqs)
	// Far from the count and amount limits: only the window's age closes it.
	stop := f.run(f.engine("ingest-age", func(c *Config) { c.MaxTransactions = 1000 }))
	o := f.read(2)
	stop()
	o.assertExactlyOnce(t, []string{reqs[0].RequestID, reqs[1].RequestID}, nil)
	if len(o.batches) != 1 {
		t.Fatalf("%d batches, want one batch closed by age", len(o.batches))
	}
}

func TestWindowArithmetic(t *testing.T) {
	cases := []struct {
		keys, budget, assigned, total int
		want                          time.Duration
	}{
		{0, 3000, 6, 6, 5 * time.Second},           // idle: the minimum
		{1, 3000, 6, 6, 28800 * time.Millisecond},  // 86,400 s / 3,000 = 28.8 s
		{10, 3000, 6, 6, 2 * time.Minute},          // 288 s, capped
		{2, 3000, 3, 6, 115200 * time.Millisecond}, // half the partitions: half the budget
	}
	for _, tc := range cases {
		if got := Window(5*time.Second, 2*time.Minute, tc.keys, tc.budget, tc.assigned, tc.total); got != tc.want {
			t.Errorf("Window(keys=%d, budget=%d, %d/%d) = %v, want %v", tc.keys, tc.budget, tc.assigned, tc.total, got, tc.want)
		}
	}
}

// A session that owns waiting requests and consumes none (here: its
// fetches paused, as a client-side bug would leave them) is replaced, and
// the requests flow; an idle instance is never taken for a stalled one.
func TestStalledSessionIsReplaced(t *testing.T) {
	f := newFixture(t, 3)
	reqs, valid, invalid := mixed(200, 0)
	f.produce(reqs)
	e := f.engine("ingest-stall-1", func(c *Config) { c.StallTimeout = time.Second })
	e.onSession = func(n int, cl *kgo.Client) {
		if n == 1 {
			cl.PauseFetchTopics(f.topics.Requests)
		}
	}
	stop := f.run(e)
	o := f.read(len(reqs))
	if got := testutil.ToFloat64(e.m.stalls); got != 1 {
		t.Fatalf("payouts_ingest_stalls_total = %v, want 1", got)
	}
	// Idle now: every request consumed. Several stall timeouts pass
	// without another restart.
	time.Sleep(3 * time.Second)
	if got := testutil.ToFloat64(e.m.stalls); got != 1 {
		t.Fatalf("an idle instance restarted its session: payouts_ingest_stalls_total = %v", got)
	}
	stop()
	o.assertExactlyOnce(t, valid, invalid)
}

// Ingest's consumer fetches at most DefaultFetchMaxPartitionBytes per
// partition (the load run's memory), or what Config says, and still reads
// every request.
func TestFetchMaxPartitionBytes(t *testing.T) {
	for _, tc := range []struct {
		set, want int32
	}{{0, DefaultFetchMaxPartitionBytes}, {64 << 10, 64 << 10}} {
		f := newFixture(t, 3)
		reqs, valid, invalid := mixed(50, 0)
		f.produce(reqs)
		e := f.engine(fmt.Sprint("ingest-fetch-", tc.set), func(c *Config) { c.FetchMaxPartitionBytes = tc.set })
		got := make(chan any, 1)
		e.onSession = func(_ int, cl *kgo.Client) {
			select {
			case got <- cl.OptValue(kgo.FetchMaxPartitionBytes):
			default:
			}
		}
		stop := f.run(e)
		o := f.read(len(reqs))
		stop()
		o.assertExactlyOnce(t, valid, invalid)
		if v := <-got; v != tc.want {
			t.Errorf("Config %d: the session fetches %v bytes per partition, want %d", tc.set, v, tc.want)
		}
	}
}
