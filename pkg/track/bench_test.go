package track

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// BenchmarkWebhook measures the whole webhook path on loopback: a real HTTP
// client, the handler, checksum verification, the hand-off lookup and the
// status CAS in a real Redis, and a synchronous acks=all produce to Kafka
// (kfake unless KAFKA_BROKERS is set), with 16 concurrent senders (BENCH_SENDERS overrides). Each
// webhook is a distinct final transition, so each produces one event. It
// reports events/s and the p50/p99 latency seen by the sender.
func BenchmarkWebhook(b *testing.B) {
	senders := 16
	if v, err := strconv.Atoi(os.Getenv("BENCH_SENDERS")); err == nil && v > 0 {
		senders = v
	}
	ctx := context.Background()
	kc := testenv.Kafka(b)
	rs := testenv.Redis(b)
	topics := events.DefaultTopics()
	topics.Status = kc.Topic(b, "bench-status", 3)
	topics.BatchStatus = kc.Topic(b, "bench-batch-status", 3)
	codec, err := events.NewCodec(ctx)
	if err != nil {
		b.Fatal(err)
	}
	sim := wompitest.NewTestServer(b, wompitest.Config{Clock: wompitest.NewManualClock(t0)})
	secret := sim.Config().EventsSecret
	e, err := New(Config{Kafka: []kgo.Opt{kgo.SeedBrokers(kc.Brokers()...)}, Codec: codec, Topics: topics,
		Redis: redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: 4 * senders}), Prefix: rs.Prefix(), Wompi: wompi.NewRail(sim.Client(nil), wompi.RailConfig{EventsSecret: secret}),
		Logger: testLogger(b), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	srv := httptest.NewUnstartedServer(e.Handler())
	srv.Config = NewWebhookServer("", e)
	srv.Start()
	defer srv.Close()

	// One recorded transaction and one signed webhook per iteration.
	sub := submitted.New(rs.Client(), rs.Prefix(), 0)
	type hook struct {
		body []byte
		sum  string
	}
	hooks := make([]hook, b.N)
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	for start := 0; start < b.N; start += 1000 {
		end := min(start+1000, b.N)
		payoutID := fmt.Sprintf("bench-payout-%s-%d", run, start)
		var txs []submitted.Transaction
		for i := start; i < end; i++ {
			txID := fmt.Sprintf("bench-tx-%s-%d", run, i)
			txs = append(txs, submitted.Transaction{TransactionID: txID, RequestID: fmt.Sprintf("bench-req-%s-%d", run, i),
				BatchID: "bench-batch", PayoutID: payoutID, AmountInCents: 100000, OriginAccountID: wompitest.AccountMain})
			status := "APPROVED"
			if i%10 == 0 {
				status = "FAILED"
			}
			hooks[i].body, hooks[i].sum = txWebhook(b, secret, txID, payoutID, 100000, status,
				map[string]string{"code": "D07", "message": "Account number does not exist"}, t0)
		}
		if err := sub.Record(ctx, submitted.Payout{PayoutID: payoutID, BatchID: "bench-batch", OriginAccountID: wompitest.AccountMain,
			PaymentType: "PAYROLL", SubmittedAt: t0}, txs, t0.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = senders
	client := &http.Client{Transport: tr}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Int64
	url := srv.URL + WebhookPath

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(hooks[i].body))
				req.Header.Set(wompi.HeaderEventChecksum, hooks[i].sum)
				t := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t)
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d webhooks failed", n, b.N)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// BenchmarkPollUnchanged polls a 1,000-transaction payout whose
// transactions read as at its last complete poll (the digest recorded):
// Wompi's GET of the payout and of its transaction page, the hand-off's
// read and the reschedule, on a real Redis and the Wompi simulator over
// loopback HTTP. No event is emitted. It reports the cost per transaction.
func BenchmarkPollUnchanged(b *testing.B) {
	f := newFixture(b, fixtureOpts{pageSize: 1000})
	e, _ := f.engine(nil)
	txs := make([]wompi.TransactionRequest, 1000)
	for i := range txs {
		txs[i] = f.payee(fmt.Sprintf("1234%05d0", i)) // none ends in a failing suffix
	}
	f.submit(true, txs...)
	ctx := context.Background()
	if res, err := e.PollOnce(ctx); err != nil || res.Claimed != 1 || res.Transitions != len(txs)+1 { // and the batch's PENDING
		b.Fatalf("first poll: %+v %v", res, err)
	}
	for b.Loop() {
		f.clock.Advance(e.cfg.PollMaxBackoff)
		if res, err := e.PollOnce(ctx); err != nil || res.Claimed != 1 || res.Transitions != 0 {
			b.Fatalf("unchanged poll: %+v %v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(txs)), "ns/transaction")
}
