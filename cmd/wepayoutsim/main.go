package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// option is one setting: a flag, its environment variable and a parser.
type option struct {
	flag, env, def, usage string
	set                   func(string) error
	secret                bool
}

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "wepayoutsim:", err)
		os.Exit(2)
	}
}

func rate(dst *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return errors.New("must be a number from 0 to 1")
		}
		*dst = f
		return nil
	}
}

func duration(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errors.New("must be a non-negative duration such as 250ms")
		}
		*dst = d
		return nil
	}
}

func integer[T int | int64 | uint64](dst *T) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errors.New("must be a non-negative integer")
		}
		var zero T
		if _, unsigned := any(zero).(uint64); !unsigned && n > math.MaxInt64 {
			return errors.New("must be a non-negative integer")
		}
		*dst = T(n)
		return nil
	}
}

func str(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }

// settings is what the command line and the environment configure.
type settings struct {
	cfg                 weptest.Config
	addr                string
	logFormat, logLevel string
	drain               time.Duration
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*settings, error) {
	var (
		st                    settings
		retries, merchant     int64
		stepDelay, stepJitter time.Duration
		balance               int64
	)
	cfg := &st.cfg
	f := &cfg.Faults
	opts := []option{
		{"addr", "WEPAYOUTSIM_ADDR", "127.0.0.1:8092", "listen address", str(&st.addr), false},
		{"api-key", "WEPAYOUT_API_KEY", weptest.DefaultAPIKey, "Bearer key clients must send, and the key that signs webhooks; also WEPAYOUT_API_KEY_FILE", str(&cfg.APIKey), true},
		{"merchant-id", "WEPAYOUT_MERCHANT_ID", "1234", "the merchant of the key (balance path, merchant_id)", integer(&merchant), false},
		{"seed", "WEPAYOUTSIM_SEED", "0", "seed of the fault dice (0: random)", integer(&cfg.Seed), false},
		{"balance", "WEPAYOUTSIM_BALANCE", "1000000000", "starting BRL balance, in cents", integer(&balance), false},
		{"step-delay", "WEPAYOUTSIM_STEP_DELAY", "1s", "delay of each status step", duration(&stepDelay), false},
		{"step-jitter", "WEPAYOUTSIM_STEP_JITTER", "1s", "extra delay in [0,jitter) per step, derived from the payment id", duration(&stepJitter), false},
		{"webhook-retries", "WEPAYOUTSIM_WEBHOOK_RETRIES", "3", "retries of a webhook answered non-2xx", integer(&retries), false},
		{"webhook-backoff", "WEPAYOUTSIM_WEBHOOK_BACKOFF", "200ms", "first webhook retry delay, doubling", duration(&cfg.WebhookBackoff), false},
		{"error-rate", "WEPAYOUTSIM_ERROR_RATE", "0", "fault: probability of a 503 on an API call", rate(&f.ErrorRate), false},
		{"too-many-requests-rate", "WEPAYOUTSIM_TOO_MANY_REQUESTS_RATE", "0", "fault: probability of a 429 on an API call", rate(&f.TooManyRequestsRate), false},
		{"latency", "WEPAYOUTSIM_LATENCY", "0s", "fault: added latency of every API call", duration(&f.Latency), false},
		{"latency-jitter", "WEPAYOUTSIM_LATENCY_JITTER", "0s", "fault: extra latency in [0,jitter)", duration(&f.LatencyJitter), false},
		{"drop-response-rate", "WEPAYOUTSIM_DROP_RESPONSE_RATE", "0", "fault: probability that a create commits, then closes the connection without answering", rate(&f.DropResponseRate), false},
		{"webhook-drop-rate", "WEPAYOUTSIM_WEBHOOK_DROP_RATE", "0", "fault: probability a webhook is never sent", rate(&f.WebhookDropRate), false},
		{"webhook-duplicate-rate", "WEPAYOUTSIM_WEBHOOK_DUPLICATE_RATE", "0", "fault: probability a webhook is sent twice", rate(&f.WebhookDuplicateRate), false},
		{"webhook-delay-rate", "WEPAYOUTSIM_WEBHOOK_DELAY_RATE", "0", "fault: probability a webhook is held back (reordered)", rate(&f.WebhookDelayRate), false},
		{"webhook-delay", "WEPAYOUTSIM_WEBHOOK_DELAY", "2s", "fault: longest hold of a delayed webhook", duration(&f.WebhookDelay), false},
		{"log-format", "WEPAYOUTSIM_LOG_FORMAT", "json", "json or text", str(&st.logFormat), false},
		{"log-level", "WEPAYOUTSIM_LOG_LEVEL", "info", "debug, info, warn or error", str(&st.logLevel), false},
		{"drain-timeout", "WEPAYOUTSIM_DRAIN_TIMEOUT", "10s", "on SIGTERM, how long to finish calls and webhooks", duration(&st.drain), false},
	}
	fs := flag.NewFlagSet("wepayoutsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := make([]*string, len(opts))
	for i, o := range opts {
		vals[i] = fs.String(o.flag, "", o.usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: wepayoutsim [flags]\n\nServes the WEpayout payouts API simulator. Each flag can be set by its environment variable; a flag wins.")
		for _, o := range opts {
			def := o.def
			if o.secret {
				def = "(built-in test value)"
			}
			fmt.Fprintf(stderr, "  -%s  (env %s, default %s)\n        %s\n", o.flag, o.env, def, o.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for i, o := range opts {
		v, src := o.def, "default of -"+o.flag
		if e := getenv(o.env); e != "" {
			v, src = e, o.env
		} else if o.secret {
			if p := getenv(o.env + "_FILE"); p != "" {
				b, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("%s_FILE: cannot read the file", o.env)
				}
				v, src = strings.TrimSpace(string(b)), o.env+"_FILE"
			}
		}
		if given[o.flag] {
			v, src = *vals[i], "-"+o.flag
		}
		if err := o.set(v); err != nil {
			if o.secret {
				v = "[REDACTED]"
			}
			return nil, fmt.Errorf("invalid %s (env %s / flag -%s) %q: %v", src, o.env, o.flag, v, err)
		}
	}
	if merchant == 0 {
		return nil, errors.New("invalid WEPAYOUT_MERCHANT_ID: must be a positive integer")
	}
	if cfg.APIKey == "" {
		return nil, errors.New("invalid WEPAYOUT_API_KEY: empty")
	}
	cfg.MerchantID, cfg.BalanceInCents = merchant, balance
	if balance == 0 {
		cfg.BalanceInCents = -1 // zero is "default" to the Config; -1 cent is as good as empty
	}
	cfg.StepDelay, cfg.StepJitter = stepDelay, stepJitter
	if stepDelay == 0 {
		cfg.StepDelay = -1 // zero means "at once", not "default"
	}
	if stepJitter == 0 {
		cfg.StepJitter = -1
	}
	cfg.WebhookRetries = int(retries)
	if retries == 0 {
		cfg.WebhookRetries = -1
	}
	return &st, nil
}

func run(args []string, getenv func(string) string, stderr io.Writer) error {
	st, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(st.logLevel)); err != nil {
		return fmt.Errorf("invalid WEPAYOUTSIM_LOG_LEVEL %q: must be debug, info, warn or error", st.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch st.logFormat {
	case "json":
		st.cfg.Logger = slog.New(slog.NewJSONHandler(os.Stdout, hopts))
	case "text":
		st.cfg.Logger = slog.New(slog.NewTextHandler(os.Stdout, hopts))
	default:
		return fmt.Errorf("invalid WEPAYOUTSIM_LOG_FORMAT %q: must be json or text", st.logFormat)
	}
	srv, err := weptest.New(st.cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(st.addr); err != nil {
		return fmt.Errorf("WEPAYOUTSIM_ADDR %q: %v", st.addr, err)
	}
	st.cfg.Logger.Info("wepayoutsim: serving", "url", srv.URL())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	st.cfg.Logger.Info("wepayoutsim: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), st.drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
