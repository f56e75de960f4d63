// Command ingest consumes payout requests and batches them into Wompi
// payouts, exactly once, with Kafka transactions. See pkg/ingest.
//
// Every setting is a flag or an env variable: run with --help for the list.
package main

import (
	"errors"
	"fmt"
	"os"

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
	if err := st.Run(ctx, logger, nil); err != nil {
		if _, missing := errors.AsType[*ops.TopicsError](err); missing {
			// A missing topic is a setting to fix, like a bad variable.
			fmt.Fprintln(os.Stderr, "config:", err)
			return 2
		}
		logger.Error("ingest stopped", "err", err)
		return 1
	}
	return 0
}
