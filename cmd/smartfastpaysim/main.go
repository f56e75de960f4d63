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

	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// option is one setting: a flag, its environment variable and a parser.
type option struct {
	flag, env, def, usage string
	set                   func(string) error
	secret                bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "smartfastpaysim:", err)
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

func boolean(dst *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		*dst = b
		return nil
	}
}

// run reads the configuration, serves until ctx ends, then drains. ready,
// when not nil, receives the server's URL once it listens.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(string)) error {
	var (
		cfg                 sfptest.Config
		addr, logFormat     string
		logLevel            string
		retries             int64
		stepDelay, revDelay time.Duration
		drain               time.Duration
		seed                uint64
		balance             int64
	)
	f := &cfg.Faults
	opts := []option{
		{"addr", "SMARTFASTPAYSIM_ADDR", "127.0.0.1:8091", "listen address", str(&addr), false},
		{"client-id", "SMARTFASTPAY_CLIENT_ID", sfptest.DefaultClientID, "client id POST /oauth2/token accepts (HTTP Basic); also SMARTFASTPAY_CLIENT_ID_FILE", str(&cfg.ClientID), true},
		{"client-secret", "SMARTFASTPAY_CLIENT_SECRET", sfptest.DefaultClientSecret, "client secret POST /oauth2/token accepts; also SMARTFASTPAY_CLIENT_SECRET_FILE", str(&cfg.ClientSecret), true},
		{"webhook-secret", "SMARTFASTPAY_WEBHOOK_SECRET", sfptest.DefaultWebhookSecret, "secret that signs the callbacks (SmartFastPay-Signature); also SMARTFASTPAY_WEBHOOK_SECRET_FILE", str(&cfg.WebhookSecret), true},
		{"token-ttl", "SMARTFASTPAYSIM_TOKEN_TTL", "1h", "life of an access token (expires_in)", duration(&cfg.TokenTTL), false},
		{"seed", "SMARTFASTPAYSIM_SEED", "0", "seed of the fault dice, ids and tokens (0: random)", integer(&seed), false},
		{"step-delay", "SMARTFASTPAYSIM_STEP_DELAY", "1s", "time between two statuses of a payout (pending -> onhold -> success | failed)", duration(&stepDelay), false},
		{"reversal-delay", "SMARTFASTPAYSIM_REVERSAL_DELAY", "3s", "time from success to refunded or returned", duration(&revDelay), false},
		{"balance", "SMARTFASTPAYSIM_BALANCE", strconv.FormatInt(sfptest.DefaultBalanceInCents, 10), "starting COP balance, in cents (never refuses a payout)", integer(&balance), false},
		{"wrap-create", "SMARTFASTPAYSIM_WRAP_CREATE", "false", "answer a create wrapped in {requestId, data} instead of bare", boolean(&cfg.WrapCreate), false},
		{"numeric-amounts", "SMARTFASTPAYSIM_NUMERIC_AMOUNTS", "false", "write amounts as JSON numbers instead of decimal strings", boolean(&cfg.NumericAmounts), false},
		{"webhook-retries", "SMARTFASTPAYSIM_WEBHOOK_RETRIES", "5", "retries of a callback answered non-2xx", integer(&retries), false},
		{"webhook-backoff", "SMARTFASTPAYSIM_WEBHOOK_BACKOFF", "200ms", "first callback retry delay, doubling", duration(&cfg.WebhookBackoff), false},
		{"error-rate", "SMARTFASTPAYSIM_ERROR_RATE", "0", "fault: probability of a 503 on an API call", rate(&f.ErrorRate), false},
		{"too-many-requests-rate", "SMARTFASTPAYSIM_TOO_MANY_REQUESTS_RATE", "0", "fault: probability of a 429 on an API call", rate(&f.TooManyRequestsRate), false},
		{"latency", "SMARTFASTPAYSIM_LATENCY", "0s", "fault: added latency of every API call", duration(&f.Latency), false},
		{"latency-jitter", "SMARTFASTPAYSIM_LATENCY_JITTER", "0s", "fault: extra latency in [0,jitter)", duration(&f.LatencyJitter), false},
		{"drop-response-rate", "SMARTFASTPAYSIM_DROP_RESPONSE_RATE", "0", "fault: probability that POST /v1/payout commits, then closes the connection without answering", rate(&f.DropResponseRate), false},
		{"webhook-drop-rate", "SMARTFASTPAYSIM_WEBHOOK_DROP_RATE", "0", "fault: probability a callback is never sent", rate(&f.WebhookDropRate), false},
		{"webhook-duplicate-rate", "SMARTFASTPAYSIM_WEBHOOK_DUPLICATE_RATE", "0", "fault: probability a callback is sent twice", rate(&f.WebhookDuplicateRate), false},
		{"webhook-delay-rate", "SMARTFASTPAYSIM_WEBHOOK_DELAY_RATE", "0", "fault: probability a callback is held back (reordered)", rate(&f.WebhookDelayRate), false},
		{"webhook-delay", "SMARTFASTPAYSIM_WEBHOOK_DELAY", "2s", "fault: longest hold of a delayed callback", duration(&f.WebhookDelay), false},
		{"log-format", "SMARTFASTPAYSIM_LOG_FORMAT", "json", "json or text", str(&logFormat), false},
		{"log-level", "SMARTFASTPAYSIM_LOG_LEVEL", "info", "debug, info, warn or error", str(&logLevel), false},
		{"drain-timeout", "SMARTFASTPAYSIM_DRAIN_TIMEOUT", "10s", "on SIGTERM, how long to finish calls and callbacks", duration(&drain), false},
	}
	fs := flag.NewFlagSet("smartfastpaysim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := make([]*string, len(opts))
	for i, o := range opts {
		vals[i] = fs.String(o.flag, "", o.usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: smartfastpaysim [flags]\n\nServes the SmartFastPay payouts API simulator. Each flag can be set by its environment variable; a flag wins.")
		for _, o := range opts {
			def := o.def
			if o.secret {
				def = "(built-in test value)"
			}
			fmt.Fprintf(stderr, "  -%s  (env %s, default %s)\n        %s\n", o.flag, o.env, def, o.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
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
					return fmt.Errorf("%s_FILE: cannot read the file", o.env)
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
			return fmt.Errorf("invalid %s (env %s / flag -%s) %q: %v", src, o.env, o.flag, v, err)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("invalid SMARTFASTPAYSIM_LOG_LEVEL %q: must be debug, info, warn or error", logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch logFormat {
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stdout, hopts))
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stdout, hopts))
	default:
		return fmt.Errorf("invalid SMARTFASTPAYSIM_LOG_FORMAT %q: must be json or text", logFormat)
	}
	if cfg.TokenTTL == 0 {
		return errors.New("invalid SMARTFASTPAYSIM_TOKEN_TTL: must be positive")
	}
	cfg.Seed, cfg.BalanceInCents = seed, balance
	cfg.StepDelay, cfg.ReversalDelay = stepDelay, revDelay
	if stepDelay == 0 {
		cfg.StepDelay = -1 // zero means "at once", not "default"
	}
	if revDelay == 0 {
		cfg.ReversalDelay = -1
	}
	cfg.WebhookRetries = int(retries)
	if retries == 0 {
		cfg.WebhookRetries = -1
	}

	srv, err := sfptest.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(addr); err != nil {
		return fmt.Errorf("SMARTFASTPAYSIM_ADDR %q: %v", addr, err)
	}
	cfg.Logger.Info("smartfastpaysim: serving", "url", srv.URL())
	if ready != nil {
		ready(srv.URL())
	}
	<-ctx.Done()
	cfg.Logger.Info("smartfastpaysim: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
