// Command ingest consumes payout requests and batches them into Wompi
// payouts, exactly once, with Kafka transactions. See pkg/ingest.
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
	"github.com/wompi-payouts/pipeline/pkg/ingest"
	"github.com/wompi-payouts/pipeline/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	set := config.New("ingest", os.LookupEnv)
	st := ingest.BindConfig(set)
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
	engine, err := st.Engine(ctx, reg, logger)
	if err != nil {
		logger.Error("ingest: start failed", "err", err)
		return 1
	}
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
	logger.Info("ingest started", "brokers", st.Kafka.Brokers, "topic", st.Topics.Requests, "group", st.Group)
	if err := engine.Run(ctx); err != nil {
		logger.Error("ingest stopped", "err", err)
		return 1
	}
	logger.Info("ingest drained")
	return 0
}
