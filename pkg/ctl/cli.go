package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
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
  dlq list                   dead letters of the requests DLQ topic, masked
  dlq replay                 republish chosen dead letters to the request topic
                             (refuses duplicates, undecodable values and
                             requestIds already in the pipeline: see --help)
  reconcile --day YYYY-MM-DD our status events of a day against the providers'
                             record of it; exit 1 on any difference

Flags common to every command: --output table|json, --reveal (personal data
unmasked), --timeout; the workers' settings (KAFKA_BROKERS, REDIS_URL,
REDIS_PREFIX, WOMPI_*, TOPIC_*, ...) as env variables or flags: see
payoutsctl <command> --help.
`

// boolFlags are the flags that take no value.
var boolFlags = map[string]bool{"reveal": true, "kafka-tls": true, "h": true, "help": true, "dry-run": true}

// commandHelp is printed before the flags by payoutsctl <command> --help.
var commandHelp = map[string]string{
	"dlq": `dlq list [--error CODE] [--limit N] lists the dead letters of the requests
DLQ topic: partition/offset, age, error code (DUPLICATE_REQUEST,
UNDECODABLE, SCHEMA_NOT_FOUND, DISPATCH_FAILED, ...), requestId, what the
value is, and the request's payee, masked unless --reveal.

` + ReplayHelp,
	"reconcile": ReconcileHelp,
}

// Failing is a result whose content makes the command exit 1 once printed
// (reconcile's differences).
type Failing interface{ Failed() bool }

func wantsHelp(flags []string) bool {
	for _, f := range flags {
		switch f {
		case "-h", "--h", "-help", "--help":
			return true
		}
	}
	return false
}

// isNil reports a result interface holding a nil pointer (a command that
// failed before it had anything to show).
func isNil(r Result) bool {
	v := reflect.ValueOf(r)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// split separates positional arguments from flags, so that flags may come
// before or after them. A flag that takes no value (but --help) followed
// by true or false takes that word as its value.
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
		name := strings.TrimLeft(a, "-")
		if boolFlags[name] && !wantsHelp([]string{a}) && i+1 < len(args) && (args[i+1] == "true" || args[i+1] == "false") {
			// --dry-run false means what it says, not a positional
			// "false" and a dry run.
			i++
			flags = append(flags, a+"="+args[i])
			continue
		}
		flags = append(flags, a)
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
	if h, ok := commandHelp[cmd]; ok && wantsHelp(flags) {
		fmt.Fprintln(stderr, h)
	}
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
	case "dlq":
		if !argc(1) {
			return 2
		}
		switch rest[0] {
		case "list":
			res, err = tool.DLQList(ctx)
		case "replay":
			if len(st.Offsets) == 0 && len(st.RequestIDs) == 0 && st.Error == "" {
				fmt.Fprintf(stderr, "payoutsctl dlq replay: choose the dead letters with --offset, --request-id or --error (see --help)\n")
				return 2
			}
			res, err = tool.DLQReplay(ctx, st.DryRun)
		default:
			fmt.Fprintf(stderr, "payoutsctl dlq: unknown subcommand %q: list or replay\n\n%s", rest[0], Usage)
			return 2
		}
	case "reconcile":
		if !argc(0) {
			return 2
		}
		if st.Day == "" {
			fmt.Fprintf(stderr, "payoutsctl reconcile: --day YYYY-MM-DD is required\n")
			return 2
		}
		res, err = tool.Reconcile(ctx, st.Day, st.Rail)
	default:
		fmt.Fprintf(stderr, "payoutsctl: unknown command %q\n\n%s", cmd, Usage)
		return 2
	}
	if err != nil {
		if res != nil && !isNil(res) {
			_ = Render(stdout, st.Output, res)
		}
		fmt.Fprintf(stderr, "payoutsctl %s: %v\n", cmd, err)
		return 1
	}
	if err := Render(stdout, st.Output, res); err != nil {
		fmt.Fprintf(stderr, "payoutsctl %s: %v\n", cmd, err)
		return 1
	}
	if f, ok := res.(Failing); ok && f.Failed() {
		fmt.Fprintf(stderr, "payoutsctl %s: differences found\n", cmd)
		return 1
	}
	return 0
}
