package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
)

// Usage is the command's synopsis.
const Usage = `Usage: payoutsctl <command> [arguments] [flags]

Commands:
  trace <requestId>          status history, Redis state and the provider's record of one request
  stuck [--older-than 1h]    batches and payouts not final past the threshold
  budget [--day YYYY-MM-DD]  per rail and origin account: amount and batches used and left
  balance                    the provider's balances and limits

Flags common to every command: --output table|json, --reveal (personal data
unmasked), --timeout; the workers' settings (KAFKA_BROKERS, REDIS_URL,
REDIS_PREFIX, WOMPI_*, TOPIC_*, ...) as env variables or flags: see
payoutsctl <command> --help.
`

// boolFlags are the flags that take no value.
var boolFlags = map[string]bool{"reveal": true, "kafka-tls": true, "h": true, "help": true}

// split separates positional arguments from flags, so that flags may come
// before or after them.
func split(args []string) (pos, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), flags
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && !boolFlags[name] && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return pos, flags
}

// Main runs one payoutsctl command: args without the program name, lookup
// the environment (os.LookupEnv). It returns the exit code: 0 done, 1 the
// command failed, 2 a usage or configuration error.
func Main(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	pos, flags := split(args)
	if len(pos) == 0 {
		fmt.Fprint(stderr, Usage)
		return 2
	}
	cmd, rest := pos[0], pos[1:]
	set := config.New("payoutsctl "+cmd, lookup)
	set.SetOutput(stderr)
	st := Bind(set)
	if err := set.Parse(flags); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, st.Timeout)
	defer cancel()
	tool := New(st, time.Now)
	defer tool.Close()
	var (
		res Result
		err error
	)
	argc := func(n int) bool {
		if len(rest) != n {
			fmt.Fprintf(stderr, "payoutsctl %s: expected %d argument(s), got %d\n\n%s", cmd, n, len(rest), Usage)
			return false
		}
		return true
	}
	switch cmd {
	case "trace":
		if !argc(1) {
			return 2
		}
		res, err = tool.Trace(ctx, rest[0])
	case "stuck":
		if !argc(0) {
			return 2
		}
		res, err = tool.Stuck(ctx, st.OlderThan)
	case "budget":
		if !argc(0) {
			return 2
		}
		res, err = tool.Budget(ctx, st.Day, st.Accounts)
	case "balance":
		if !argc(0) {
			return 2
		}
		res, err = tool.Balance(ctx)
	default:
		fmt.Fprintf(stderr, "payoutsctl: unknown command %q\n\n%s", cmd, Usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "payoutsctl %s: %v\n", cmd, err)
		return 1
	}
	if err := Render(stdout, st.Output, res); err != nil {
		fmt.Fprintf(stderr, "payoutsctl %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
