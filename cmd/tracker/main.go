// Command tracker receives the rails' signed webhooks (POST /webhooks/wompi,
// and /webhooks/smartfastpay and /webhooks/wepayout for the rails enabled
// by their credentials), polls the payouts whose webhooks may have been
// lost, and produces every status transition of a request
// (payouts.status.v1) and of a batch (payouts.batch-status.v1) once, with a
// deterministic eventId. See pkg/track.
//
// Every setting is a flag or an env variable: run with --help for the list.
// A bad value stops it with one line naming the variable (exit 2). SIGTERM
// drains: /readyz fails, in-flight webhooks finish, polling stops.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

func main() { os.Exit(run(os.Args[1:], os.LookupEnv, os.Stderr)) }

func run(args []string, lookup func(string) (string, bool), stderr io.Writer) int {
	set := config.New("tracker", lookup)
	set.SetOutput(stderr)
	st := track.BindConfig(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger, err := ops.NewLogger(stderr, st.LogFormat, st.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "config: LOG_LEVEL/LOG_FORMAT:", err)
		return 2
	}
	ctx, stop := ops.SignalContext()
	defer stop()
	if err := st.Run(ctx, logger, nil); err != nil {
		if _, missing := errors.AsType[*ops.TopicsError](err); missing {
			// A missing topic is a setting to fix, like a bad variable.
			fmt.Fprintln(stderr, "config:", err)
			return 2
		}
		logger.Error("tracker stopped", "err", err)
		return 1
	}
	return 0
}
