package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Worker is what runs around a consumer-group worker's engine: the
// /metrics, /healthz and /readyz server on METRICS_ADDR, the group's
// consumer lag gauge, and a /readyz that follows the engine and fails as
// soon as the drain starts. Fill in the fields and call Run; cmd/ingest and
// cmd/dispatcher do so through their Settings.Run.
type Worker struct {
	// MetricsAddr is the listen address of /metrics, /healthz and /readyz
	// (METRICS_ADDR). Port 0 picks a free port, reported to Started.
	MetricsAddr string
	// Registry is served on /metrics and gets the lag gauge. Nil: a fresh
	// NewRegistry, which holds only the runtime metrics.
	Registry *prometheus.Registry
	// Ready reports whether the engine takes work (it has joined its group
	// and can produce). It is polled every ReadyInterval from another
	// goroutine, so it must be safe for concurrent use. Nil: always ready.
	Ready func() bool
	// ReadyInterval is the period of the Ready poll. Zero or less: one
	// second.
	ReadyInterval time.Duration
	// Topics are the topics the engine reads or writes. When set (with
	// LagKafka), Run first checks that each exists, waiting up to
	// TopicWait for the brokers and the topics (see CheckTopics): a missing
	// one is an error naming the topic and its setting, and run is not
	// called. Then /readyz also follows the dependency "kafka" (KafkaTopics):
	// the brokers answer and every partition has a leader.
	Topics []Topic
	// TopicWait bounds the wait for Topics at start. Zero: DefaultTopicWait;
	// negative: no wait, one try.
	TopicWait time.Duration
	// Dependencies are checked with every Ready poll (see
	// CheckDependencies): /readyz answers 503 naming the first that fails.
	Dependencies []Dependency
	// Group and LagKafka feed the lag exporter (payouts_consumer_group_lag,
	// measured every 15 s): the consumer group and the base Kafka options
	// its own admin client dials with. The exporter is best effort: none
	// runs when either is empty, and one that cannot be built is logged and
	// skipped, never failing Run. LagKafka also dials the Topics checks.
	Group    string
	LagKafka []kgo.Opt
	// Logger gets the problems of the scaffold itself (the lag exporter,
	// the metrics server). Nil: discarded.
	Logger *slog.Logger
	// Started, if not nil, gets the bound metrics address before run is
	// called (useful with port 0).
	Started func(metrics net.Addr)
}

const (
	// lagInterval is how often the lag exporter measures the group.
	lagInterval = 15 * time.Second
	// shutdownGrace bounds how long the metrics server waits for requests
	// in flight once run has returned; then it closes them.
	shutdownGrace = 5 * time.Second
)

// Run listens on MetricsAddr (a failure is an error naming METRICS_ADDR,
// and run is not called), serves Handler there (/readyz answers 503 until
// the checks below pass), checks that the Topics exist (a missing one is a
// *TopicsError, and run is not called), reports the bound address to
// Started, starts the lag exporter and the Ready poll, then calls run with
// ctx and returns its error.
//
// When ctx is done (SIGTERM) /readyz fails at once, whatever Ready says,
// while run drains; /metrics, /healthz and the lag gauge keep going. Once
// run returns, the lag exporter and the Ready poll stop and the server
// shuts down, so the address is free again when Run returns.
func (w Worker) Run(ctx context.Context, run func(ctx context.Context) error) error {
	reg := w.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", w.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}

	var health Health
	srv := NewServer(w.MetricsAddr, Handler(reg, &health))
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	// bg outlives ctx: the lag gauge and the Ready poll go on through the
	// drain and end with run.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	// kcl is the one admin client of the topic checks and the lag exporter
	// (LagKafka may carry a kprom hook, which registers once per client).
	var kcl *kgo.Client
	stopDraining := context.AfterFunc(ctx, health.SetDraining)
	defer func() {
		stopDraining()
		stopBG()
		wg.Wait()
		if kcl != nil {
			kcl.Close()
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-served
	}()

	deps := w.Dependencies
	if len(w.LagKafka) > 0 && (len(w.Topics) > 0 || w.Group != "") {
		cl, err := kgo.NewClient(w.LagKafka...)
		switch {
		case err != nil && len(w.Topics) > 0:
			return fmt.Errorf("KAFKA_BROKERS: %w", err)
		case err != nil:
			log.Warn("consumer lag not exported", "group", w.Group, "err", err)
		default:
			kcl = cl
		}
	}
	if len(w.Topics) > 0 && kcl != nil {
		wait := w.TopicWait
		switch {
		case wait == 0:
			wait = DefaultTopicWait
		case wait < 0:
			wait = 0
		}
		brokers, _ := kcl.OptValue(kgo.SeedBrokers).([]string)
		if err := CheckTopics(ctx, kcl, brokers, w.Topics, wait, log); err != nil {
			return err
		}
		deps = append([]Dependency{KafkaTopics(kcl, w.Topics)}, deps...)
	}

	if w.Group != "" && kcl != nil {
		lag, err := newLagExporterOn(reg, kcl, w.Group, log)
		if err != nil {
			log.Warn("consumer lag not exported", "group", w.Group, "err", err)
		} else {
			wg.Go(func() { lag.Run(bg, lagInterval) })
		}
	}
	wg.Go(func() { w.followReady(bg, &health, deps) })

	if w.Started != nil {
		w.Started(ln.Addr())
	}
	return run(ctx)
}

// errNotConsuming is the /readyz reason while the engine's Ready is false.
var errNotConsuming = errors.New("not consuming yet (joining its group) or stopped")

// followReady sets h from Ready and deps now and every ReadyInterval until
// ctx is done.
func (w Worker) followReady(ctx context.Context, h *Health, deps []Dependency) {
	ready := w.Ready
	if ready == nil {
		ready = func() bool { return true }
	}
	every := w.ReadyInterval
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := CheckDependencies(ctx, deps)
		if err == nil && !ready() {
			err = fmt.Errorf("engine: %w", errNotConsuming)
		}
		if ctx.Err() == nil {
			h.SetFailing(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
