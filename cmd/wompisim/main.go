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

	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
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
		fmt.Fprintln(os.Stderr, "wompisim:", err)
		os.Exit(2)
	}
}

func rate(dst *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
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
		// Unsigned, so that a uint64 (a seed) takes its whole range; the
		// signed targets must still fit in 63 bits.
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

func positive(dst *float64) func(string) error {
	return func(v string) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || !(x > 0) || math.IsInf(x, 0) {
			return errors.New("must be a positive number")
		}
		*dst = x
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

// optionalCents parses an amount in cents, or "" for "not set" (-1).
func optionalCents(dst *int64) func(string) error {
	return func(v string) error {
		if v == "" {
			*dst = -1
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return errors.New("must be a positive integer (cents), or empty for each account's own")
		}
		*dst = n
		return nil
	}
}

// settings is what the command line and the environment configure.
type settings struct {
	cfg   wompitest.Config
	addr  string
	drain time.Duration
}

// parse reads the flags and variables into the simulator's settings; the
// logger writes to stdout.
func parse(args []string, getenv func(string) string, stdout, stderr io.Writer) (*settings, error) {
	var (
		st               settings
		accountLimit     int64
		accountBalance   int64
		logFormat        string
		logLevel         string
		retries          int64
		settleDelay      time.Duration
		settleJitter     time.Duration
		seed             uint64
		batchCap         int
		clientDailyLimit int64
	)
	cfg, addr, drain := &st.cfg, &st.addr, &st.drain
	f := &cfg.Faults
	opts := []option{
		{"addr", "WOMPISIM_ADDR", "127.0.0.1:8089", "listen address", str(addr), false},
		{"api-key", "WOMPI_API_KEY", "sim-api-key", "API key clients must send (x-api-key); also WOMPI_API_KEY_FILE", str(&cfg.APIKey), true},
		{"principal-id", "WOMPI_PRINCIPAL_ID", "sim-principal", "principal id clients must send (user-principal-id); also WOMPI_PRINCIPAL_ID_FILE", str(&cfg.PrincipalID), true},
		{"events-secret", "WOMPI_EVENTS_SECRET", "sim-events-secret", "secret that signs webhooks; also WOMPI_EVENTS_SECRET_FILE", str(&cfg.EventsSecret), true},
		{"webhook-url", "WEBHOOK_URL", "", "where webhooks are POSTed (empty: none; settable at run time via POST /_sim/webhook)", str(&cfg.WebhookURL), false},
		{"seed", "WOMPISIM_SEED", "0", "seed of the fault dice and ids (0: random)", integer(&seed), false},
		{"settle-delay", "WOMPISIM_SETTLE_DELAY", "1s", "base delay before a due transaction settles", duration(&settleDelay), false},
		{"settle-jitter", "WOMPISIM_SETTLE_JITTER", "2s", "extra delay in [0,jitter) derived from the reference", duration(&settleJitter), false},
		{"daily-batch-cap", "WOMPISIM_DAILY_BATCH_CAP", "3800", "batches per client per Bogota day", integer(&batchCap), false},
		{"client-daily-limit", "WOMPISIM_CLIENT_DAILY_LIMIT", "150000000000", "client amount limit per Bogota day, in cents", integer(&clientDailyLimit), false},
		{"account-daily-limit", "WOMPISIM_ACCOUNT_DAILY_LIMIT", "", "every origin account's amount limit per Bogota day, in cents (empty: each account's own, 150000000000 / 20000000000 / 5000000000)", optionalCents(&accountLimit), false},
		{"account-balance", "WOMPISIM_ACCOUNT_BALANCE", "", "every origin account's starting balance, in cents (empty: each account's own, 1000000000000 / 50000000000 / 10000000)", optionalCents(&accountBalance), false},
		{"webhook-retries", "WOMPISIM_WEBHOOK_RETRIES", "3", "retries of a webhook answered non-2xx", integer(&retries), false},
		{"webhook-backoff", "WOMPISIM_WEBHOOK_BACKOFF", "200ms", "first webhook retry delay, doubling", duration(&cfg.WebhookBackoff), false},
		{"error-rate", "WOMPISIM_ERROR_RATE", "0", "fault: probability of a 503 on an API call", rate(&f.ErrorRate), false},
		{"too-many-requests-rate", "WOMPISIM_TOO_MANY_REQUESTS_RATE", "0", "fault: probability of a 429 on an API call", rate(&f.TooManyRequestsRate), false},
		{"latency", "WOMPISIM_LATENCY", "0s", "fault: added latency of every API call", duration(&f.Latency), false},
		{"latency-jitter", "WOMPISIM_LATENCY_JITTER", "0s", "fault: extra latency in [0,jitter)", duration(&f.LatencyJitter), false},
		{"drop-response-rate", "WOMPISIM_DROP_RESPONSE_RATE", "0", "fault: probability that POST /payouts commits, then closes the connection without answering", rate(&f.DropResponseRate), false},
		{"webhook-drop-rate", "WOMPISIM_WEBHOOK_DROP_RATE", "0", "fault: probability a webhook is never sent", rate(&f.WebhookDropRate), false},
		{"webhook-duplicate-rate", "WOMPISIM_WEBHOOK_DUPLICATE_RATE", "0", "fault: probability a webhook is sent twice", rate(&f.WebhookDuplicateRate), false},
		{"webhook-delay-rate", "WOMPISIM_WEBHOOK_DELAY_RATE", "0", "fault: probability a webhook is held back (reordered)", rate(&f.WebhookDelayRate), false},
		{"webhook-delay", "WOMPISIM_WEBHOOK_DELAY", "2s", "fault: longest hold of a delayed webhook", duration(&f.WebhookDelay), false},
		{"unhealthy", "WOMPISIM_UNHEALTHY", "false", "fault: GET /health answers 503 UNHEALTHY", boolean(&f.Unhealthy), false},
		{"partial-outage", "WOMPISIM_PARTIAL_OUTAGE", "false", "fault: GET /health answers 200 PARTIAL_OUTAGE (notifications down)", boolean(&f.PartialOutage), false},
		{"published-only", "WOMPISIM_PUBLISHED_ONLY", "false", "answer only what Wompi publishes: no [ours] extras (/limits date, numberOfBatchesConsumed, accounts; batch accountId, recurring; transaction payoutId)", boolean(&cfg.PublishedOnly), false},
		{"strict-status-filter", "WOMPISIM_STRICT_STATUS_FILTER", "false", "GET /payouts answers 400 to a status filter value outside the six documented ones", boolean(&cfg.StrictStatusFilter), false},
		{"lenient-content-type", "WOMPISIM_LENIENT_CONTENT_TYPE", "false", "accept POST /payouts without Content-Type application/json", boolean(&cfg.LenientContentType), false},
		{"fixed-signature-properties", "WOMPISIM_FIXED_SIGNATURE_PROPERTIES", "false", "sign every webhook over id, status, amountInCents instead of a list that varies per event", boolean(&cfg.FixedSignatureProperties), false},
		{"batch-outcomes", "WOMPISIM_BATCH_OUTCOMES", "false", "batch reference suffixes -rejected, -not-approved, -afe-hold, -afe-rejected end the batch so", boolean(&cfg.BatchOutcomes), false},
		{"bank-settlement", "WOMPISIM_BANK_SETTLEMENT", "false", "settle by bank: same bank as the origin account within 1h, ACH within 24h (times settle-scale)", boolean(&cfg.BankSettlement), false},
		{"settle-scale", "WOMPISIM_SETTLE_SCALE", "1", "multiplies the bank settlement delays (e.g. 0.000277 turns an hour into a second)", positive(&cfg.SettleScale), false},
		{"post-unauthorized", "WOMPISIM_POST_UNAUTHORIZED", "false", "fault: every POST /payouts answers 401 UNAUTHORIZED (an API-key outage; reads still work)", boolean(&f.PostUnauthorized), false},
		{"late-reject-rate", "WOMPISIM_LATE_REJECT_RATE", "0", "fault: probability that reusing a live idempotency key is answered 400 VALIDATION_ERROR instead of 409 EXC_022", rate(&f.LateRejectRate), false},
		{"idempotency-ttl", "WOMPISIM_IDEMPOTENCY_TTL", "24h", "how long an idempotency key blocks reuse (Wompi: 24 h); shorter in tests that must see a key expire", duration(&cfg.IdempotencyTTL), false},
		{"log-format", "WOMPISIM_LOG_FORMAT", "json", "json or text", str(&logFormat), false},
		{"log-level", "WOMPISIM_LOG_LEVEL", "info", "debug, info, warn or error", str(&logLevel), false},
		{"drain-timeout", "WOMPISIM_DRAIN_TIMEOUT", "10s", "on SIGTERM, how long to finish calls and webhooks", duration(drain), false},
	}
	fs := flag.NewFlagSet("wompisim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := make([]*string, len(opts))
	for i, o := range opts {
		vals[i] = fs.String(o.flag, "", o.usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: wompisim [flags]\n\nServes the Wompi payouts API simulator. Each flag can be set by its environment variable; a flag wins.")
		for _, o := range opts {
			def := o.def
			if o.secret {
				def = "(built-in test value)"
			} else if def == "" {
				def = "none"
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, fmt.Errorf("invalid WOMPISIM_LOG_LEVEL %q: must be debug, info, warn or error", logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch logFormat {
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stdout, hopts))
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stdout, hopts))
	default:
		return nil, fmt.Errorf("invalid WOMPISIM_LOG_FORMAT %q: must be json or text", logFormat)
	}
	cfg.Seed, cfg.DailyBatchCap, cfg.ClientDailyLimitInCents = seed, batchCap, clientDailyLimit
	cfg.SettleDelay, cfg.SettleJitter = settleDelay, settleJitter
	if settleDelay == 0 {
		cfg.SettleDelay = -1 // zero means "settle at once", not "default"
	}
	if settleJitter == 0 {
		cfg.SettleJitter = -1
	}
	cfg.WebhookRetries = int(retries)
	if retries == 0 {
		cfg.WebhookRetries = -1
	}
	// One limit and one balance for every account: a load run moves more
	// money than the default accounts' day allows.
	if accountLimit > 0 || accountBalance > 0 {
		cfg.Accounts = wompitest.DefaultAccounts()
		for i := range cfg.Accounts {
			if accountLimit > 0 {
				cfg.Accounts[i].DailyLimitInCents = accountLimit
			}
			if accountBalance > 0 {
				cfg.Accounts[i].BalanceInCents = accountBalance
			}
		}
	}
	return &st, nil
}

func run(args []string, getenv func(string) string, stderr io.Writer) error {
	st, err := parse(args, getenv, os.Stdout, stderr)
	if err != nil {
		return err
	}
	cfg, addr, drain := st.cfg, st.addr, st.drain
	srv, err := wompitest.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(addr); err != nil {
		return fmt.Errorf("WOMPISIM_ADDR %q: %v", addr, err)
	}
	cfg.Logger.Info("wompisim: serving", "url", srv.BaseURL(), "webhookUrl", cfg.WebhookURL != "")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	cfg.Logger.Info("wompisim: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
