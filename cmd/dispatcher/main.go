// Command dispatcher posts payout batches to Wompi exactly once: it consumes
// payouts.batches.v1 and payouts.batches.deferred.v1 in a consumer group,
// respects the daily limits and the shared rate limit, and reports every
// outcome to the status topics. See pkg/dispatch.
//
// Every setting is a flag or an env variable: run with --help for the list.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	set := config.New("dispatcher", os.LookupEnv)
	st := dispatch.BindConfig(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	logger, err := ops.NewLogger(os.Stderr, st.LogFormat, st.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "config: LOG_LEVEL/LOG_FORMAT:", err)
		return 2
	}
	ctx, stop := ops.SignalContext()
	defer stop()

	reg := ops.NewRegistry()
	engine, closeDeps, err := st.Engine(ctx, reg, logger)
	if err != nil {
		logger.Error("dispatcher: start failed", "err", err)
		return 1
	}
	defer closeDeps()
	if opts, err := st.Kafka.Opts(prometheus.NewRegistry(), "lag"); err == nil {
		if lag, err := ops.NewLagExporter(reg, opts, st.Group, logger); err == nil {
			go lag.Run(ctx, 15*time.Second)
		}
	}
	var health ops.Health
	go func() {
		srv := ops.NewServer(st.MetricsAddr, ops.Handler(reg, &health))
		if err := ops.Serve(ctx, srv, 5*time.Second, nil); err != nil {
			logger.Error("metrics server", "err", err)
		}
	}()
	go func() {
		for ctx.Err() == nil {
			health.SetReady(engine.Ready())
			time.Sleep(time.Second)
		}
		health.SetDraining()
	}()
	logger.Info("dispatcher started", "brokers", st.Kafka.Brokers, "topics", []string{st.Topics.Batches, st.Topics.BatchesDeferred},
		"group", st.Group, "wompi", st.WompiBaseURL)
	if err := engine.Run(ctx); err != nil {
		logger.Error("dispatcher stopped", "err", err)
		return 1
	}
	logger.Info("dispatcher drained")
	return 0
}
