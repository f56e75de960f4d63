package localrun

import (
	"context"
	"errors"
	"fmt"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Run starts the stack, publishes the marketplace's requests, follows them
// to their final statuses, and returns the reconciliation. With Serve it then
// keeps the stack up until ctx is done.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	began := time.Now()
	s, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	fmt.Fprintf(o.Out, "payouts-local: kafka %s (%s), redis %s (%s), wompi simulator %s\n",
		strings.Join(s.Brokers, ","), kafkaKind(o), s.Redis.Addr, s.Redis.Kind, s.SimURL)
	fmt.Fprintf(o.Out, "payouts-local: tracker webhooks http://%s/webhooks/wompi; metrics ingest http://%s/metrics, dispatcher http://%s/metrics, tracker http://%s/metrics\n",
		s.WebhookAddr, s.Metrics["ingest"], s.Metrics["dispatcher"], s.Metrics["tracker"])
	for _, r := range []struct{ name, url string }{{"smartfastpay", s.SmartFastPayURL}, {"wepayout", s.WEpayoutURL}} {
		if r.url != "" {
			fmt.Fprintf(o.Out, "payouts-local: %s simulator %s; webhooks http://%s/webhooks/%s\n", r.name, r.url, s.WebhookAddr, r.name)
		}
	}
	if s.Redis.Kind == "miniredis" {
		fmt.Fprintln(o.Out, "payouts-local: no REDIS_URL and no redis-server on PATH: using embedded miniredis (not Redis; install redis-server for the real thing)")
	}

	var report *Report
	if o.Requests > 0 {
		report, err = s.drive(ctx, o, began)
		if err != nil {
			return report, err
		}
	}
	if o.Serve {
		fmt.Fprintf(o.Out, "payouts-local: wompi simulator credentials (the local sandbox's fake ones, not secrets): WOMPI_API_KEY=%s WOMPI_PRINCIPAL_ID=%s WOMPI_EVENTS_SECRET=%s\n",
			simAPIKey, simPrincipal, simSecret)
		if s.SmartFastPay != nil {
			fmt.Fprintf(o.Out, "payouts-local: smartfastpay and wepayout simulator credentials (fake): SMARTFASTPAY_CLIENT_ID=%s SMARTFASTPAY_CLIENT_SECRET=%s SMARTFASTPAY_WEBHOOK_SECRET=%s WEPAYOUT_API_KEY=%s\n",
				sfptest.DefaultClientID, sfptest.DefaultClientSecret, sfptest.DefaultWebhookSecret, weptest.DefaultAPIKey)
		}
		fmt.Fprintf(o.Out, "payouts-local: serving; produce PayoutRequested records to %s on %s. Ctrl-C to stop.\n", s.Topics.Requests, strings.Join(s.Brokers, ","))
		select {
		case <-ctx.Done():
		case err := <-s.Err():
			return report, err
		}
	}
	return report, nil
}

func kafkaKind(o Options) string {
	if o.ExternalKafka {
		return "external Kafka (KAFKA_BROKERS)"
	}
	if len(o.KafkaBrokers) > 0 {
		return "kfake process"
	}
	return "in-process kfake"
}

// drive publishes the requests and waits until each is settled.
func (s *Stack) drive(ctx context.Context, o Options, began time.Time) (*Report, error) {
	if o.Load {
		defer labelLoadGen(ctx)()
	}
	m := NewMarketplace(fmt.Sprintf("r%x", uint32(o.Seed)), o.Seed, o.Mix, time.Now)
	tally := NewTally(m, o.Requests)
	tally.untilSubmitted = o.Load

	// Follow the status topic from its start.
	statusCl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(s.Topics.Status),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer statusCl.Close()
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	var decodeErrs atomic.Int64
	go func() {
		var sc payout.StatusChange
		for fctx.Err() == nil {
			fs := statusCl.PollFetches(fctx)
			fs.EachRecord(func(r *kgo.Record) {
				if err := s.Codec.DecodeStatusChange(r.Value, &sc); err != nil {
					decodeErrs.Add(1)
					return
				}
				tally.Observe(&sc)
			})
		}
	}()

	var pubErr atomic.Pointer[error]
	pub, err := s.NewPublisher(func(err error) { pubErr.CompareAndSwap(nil, &err) })
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	var cpuBefore cpuSample
	var split *cpuSplit
	if o.Load {
		ys, _ := cpustat.Yardstick()
		split = startCPUSplit()
		cpuBefore = s.sampleCPU(ctx, o.children)
		cpuBefore.yardstick = ys
	}
	start := time.Now()
	var req payout.Request
	for i := range o.Requests {
		k := m.Next(i, &req)
		tally.Published(i, k, req.AmountInCents, time.Now())
		if err := pub.Publish(ctx, &req); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		if garbageAfter(i, o.Requests, o.Garbage) {
			pub.PublishRaw(ctx, fmt.Sprintf("garbage-%d", i), []byte("\x00\x00\x00\x00\x07not avro"))
		}
	}
	if err := pub.Flush(ctx); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if p := pubErr.Load(); p != nil {
		return nil, fmt.Errorf("publish: %w", *p)
	}
	published := time.Since(start)

	// Wait, recharging the low-balance account once its batches defer.
	prog := newProgress(o.Out, o.Terminal, o.Requests)
	deadline := time.Now().Add(o.Timeout)
	recharged := false
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		settled, submitted, payouts := tally.Progress()
		prog.update(settled, submitted, payouts)
		if settled == o.Requests {
			break
		}
		if !recharged && tally.anyDeferred() {
			// The marketplace's treasury tops the account up; the deferred
			// batches go out on their next try.
			if _, err := s.wompi.RechargeBalance(ctx, wompitest.AccountLow, 5_000_000_000); err == nil {
				recharged = true
				prog.notice("payouts-local: batches of the low-balance account were DEFERRED (EXC_008); recharged it with $50,000,000.00")
			}
		}
		select {
		case <-ctx.Done():
			prog.done()
			return nil, ctx.Err()
		case err := <-s.Err():
			prog.done()
			return nil, err
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	var cpuAfter cpuSample
	loadGenShare, splitOK := 0.0, false
	if o.Load {
		cpuAfter = s.sampleCPU(ctx, o.children)
		loadGenShare, splitOK = split.stop()
		cpuAfter.yardstick, _ = cpustat.Yardstick()
	}
	prog.done()
	stopFollow()

	dlq := 0
	if o.Garbage > 0 {
		dlq = s.countTopic(ctx, s.Topics.RequestsDLQ)
	}
	var rep *Report
	if s.Sim != nil {
		rep = tally.Reconcile(s.Sim, s.SmartFastPay, s.WEpayout, dlq, time.Since(began))
	} else {
		ledger, err := tally.fetchLedger(ctx, s.SimURL)
		if err != nil {
			return nil, err
		}
		for _, r := range []struct {
			name rail.Name
			url  string
		}{{rail.SmartFastPay, s.SmartFastPayURL}, {rail.WEpayout, s.WEpayoutURL}} {
			if r.url != "" {
				if err := tally.railLedger(ctx, r.name, r.url, ledger); err != nil {
					return nil, err
				}
			}
		}
		rep = tally.reconcile(ledger, dlq, time.Since(began))
	}
	if o.Load {
		batches := rep.Batches
		if o.Rail != "" && o.Rail != string(rail.Wompi) {
			// A single-payout rail's batches are ingest's: one payout per payee.
			batches = rep.IngestBatches
		}
		rep.Load = s.loadFigures(ctx, o, batches, published, elapsed, cpuBefore, cpuAfter)
		rep.Load.SteadyPerSec = rep.SteadyPerSec
		if splitOK {
			rep.Load.LoadGenCPU = time.Duration(loadGenShare * float64(rep.Load.WorkersCPU))
		}
	}
	if n := decodeErrs.Load(); n > 0 {
		return rep, fmt.Errorf("%d status events did not decode", n)
	}
	return rep, nil
}

// garbageAfter reports whether an undecodable record follows request i of
// requests: garbage of them spread evenly, at most one after each request
// but the first (fewer requests than garbage records: one after each).
func garbageAfter(i, requests, garbage int) bool {
	if garbage <= 0 || i <= 0 {
		return false
	}
	step := max(1, requests/(garbage+1))
	return i%step == 0 && i/step <= garbage
}

// countTopic counts the committed records of a topic.
func (s *Stack) countTopic(ctx context.Context, topic string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0
	}
	defer cl.Close()
	n := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(cctx)
		cancel()
		if fs.NumRecords() == 0 {
			return n
		}
		n += fs.NumRecords()
	}
}

func (t *Tally) anyDeferred() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range t.deferred {
		if d {
			return true
		}
	}
	return false
}

// peakRSS returns this process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

var errNoLedger = errors.New("simulator ledger unavailable")
