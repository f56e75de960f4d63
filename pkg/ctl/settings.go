package ctl

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Settings are payoutsctl's configuration: the workers' own environment
// variables (same names, same parsers) plus the tool's flags.
type Settings struct {
	config.Common
	RedisURL         string
	RedisPrefix      string
	WompiBaseURL     string
	WompiAPIKey      string
	WompiPrincipalID string
	DailyLimitCents  int64
	DailyBatchCap    int
	LeaseTTL         time.Duration
	DedupeWindow     time.Duration

	// Flags of the tool.
	Output  string        // table or json
	Reveal  bool          // show personal data unmasked
	Timeout time.Duration // bound of the whole command

	// Flags of the subcommands.
	OlderThan  time.Duration // stuck
	Day        string        // budget, reconcile
	Accounts   []string      // budget
	Error      string        // dlq list, dlq replay: only dead letters of this code
	Limit      int           // dlq list, dlq replay: at most this many (0: no bound)
	Offsets    []string      // dlq replay: dead letters by partition/offset
	RequestIDs []string      // dlq replay: dead letters by requestId
	DryRun     bool          // dlq replay
	Rail       string        // reconcile: one rail (default every enabled rail)

	// Rails are the SMARTFASTPAY_* and WEPAYOUT_* settings of the workers:
	// reconcile reads the rails enabled by their credentials.
	Rails *railconfig.Settings
}

// readerRole binds the rails' settings for a reader: neither the
// dispatcher's callback URLs nor the tracker's webhook secret is required,
// only the credentials that enable a rail.
const readerRole railconfig.Role = -1

// Bind binds the settings on s. Nothing is required at bind time: each
// subcommand checks what it needs (Require) and names the variable.
func Bind(s *config.Set) *Settings {
	st := &Settings{}
	config.BindCommon(s, &st.Common, "payoutsctl")
	s.String(&st.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL of the workers (read only)").
		Check(func() error {
			if st.RedisURL == "" {
				return nil
			}
			return config.CheckRedisURL(st.RedisURL)
		})
	s.String(&st.RedisPrefix, "redis-prefix", "REDIS_PREFIX", submitted.DefaultPrefix, "prefix of every Redis key (the workers')").
		Check(func() error {
			if st.RedisPrefix == "" || strings.ContainsAny(st.RedisPrefix, "{}") {
				return errors.New("must be non-empty and free of braces, as the dispatcher's")
			}
			return nil
		})
	s.String(&st.WompiBaseURL, "wompi-base-url", "WOMPI_BASE_URL", wompi.SandboxBaseURL, "Wompi payouts API root, including /v1")
	s.Secret(&st.WompiAPIKey, "wompi-api-key", "WOMPI_API_KEY", "Wompi x-api-key")
	s.Secret(&st.WompiPrincipalID, "wompi-principal-id", "WOMPI_PRINCIPAL_ID", "Wompi user-principal-id")
	s.Int64(&st.DailyLimitCents, "daily-limit-cents", "DAILY_LIMIT_CENTS", wompi.DefaultDailyLimitCents,
		"per-account daily money limit in cents, as the dispatcher has it").Check(func() error { return config.CheckPositive(st.DailyLimitCents) })
	s.Int(&st.DailyBatchCap, "daily-batch-cap", "DAILY_BATCH_CAP", wompi.DailyBatchCap, "batches per Bogota day, as the dispatcher has it").
		Check(func() error { return config.CheckPositive(st.DailyBatchCap) })
	s.Duration(&st.LeaseTTL, "lease-ttl", "DISPATCHER_LEASE_TTL", dispatch.DefaultLeaseTTL, "the dispatcher's lease (dates a batch's last step)").
		Check(func() error { return config.CheckPositive(st.LeaseTTL) })

	s.Duration(&st.DedupeWindow, "dedupe-window", "DEDUPE_WINDOW", dispatch.DefaultDedupeWindow,
		"how long a requestId is single-use, as the workers have it: dlq replay refuses a dead letter whose status history from that long before it has left the status topic").
		Check(func() error { return config.CheckPositive(st.DedupeWindow) })

	s.String(&st.Output, "output", "PAYOUTSCTL_OUTPUT", "table", "table or json").Check(func() error {
		if st.Output != "table" && st.Output != "json" {
			return fmt.Errorf("%q is not table or json", st.Output)
		}
		return nil
	})
	s.Bool(&st.Reveal, "reveal", "PAYOUTSCTL_REVEAL", false, "show personal data (legal ids, account numbers, names, emails, phones) unmasked")
	s.Duration(&st.Timeout, "timeout", "PAYOUTSCTL_TIMEOUT", 2*time.Minute, "bound of the whole command").
		Check(func() error { return config.CheckPositive(st.Timeout) })
	s.Duration(&st.OlderThan, "older-than", "PAYOUTSCTL_OLDER_THAN", time.Hour, "stuck: age past which a batch or payout that is not final is listed").
		Check(func() error {
			if st.OlderThan < 0 {
				return errors.New("must not be negative")
			}
			return nil
		})
	s.String(&st.Day, "day", "PAYOUTSCTL_DAY", "", "budget: the Bogota day, YYYY-MM-DD (default today); reconcile: the day in each rail's time zone (required)").Check(func() error {
		if st.Day == "" {
			return nil
		}
		_, err := payout.ParseDay(st.Day)
		return err
	})
	s.List(&st.Accounts, "account", "PAYOUTSCTL_ACCOUNTS", "", "budget: origin accounts, comma-separated (default: the provider's GET /accounts)")
	s.String(&st.Error, "error", "PAYOUTSCTL_ERROR", "", "dlq: only dead letters whose error code is this one (DUPLICATE_REQUEST, UNDECODABLE, SCHEMA_NOT_FOUND, DISPATCH_FAILED, ...)")
	s.Int(&st.Limit, "limit", "PAYOUTSCTL_LIMIT", 0, "dlq: at most this many dead letters, oldest first (0: no bound)").
		Check(func() error {
			if st.Limit < 0 {
				return errors.New("must not be negative")
			}
			return nil
		})
	s.List(&st.Offsets, "offset", "PAYOUTSCTL_OFFSETS", "", "dlq replay: the dead letters to replay, as partition/offset of the DLQ topic, comma-separated").
		Check(func() error {
			for _, o := range st.Offsets {
				if _, _, err := parsePosition(o); err != nil {
					return err
				}
			}
			return nil
		})
	s.List(&st.RequestIDs, "request-id", "PAYOUTSCTL_REQUEST_IDS", "", "dlq replay: the dead letters to replay, by requestId, comma-separated")
	s.Bool(&st.DryRun, "dry-run", "PAYOUTSCTL_DRY_RUN", false, "dlq replay: say what would be replayed, produce nothing")
	s.String(&st.Rail, "rail", "PAYOUTSCTL_RAIL", "", "reconcile: one rail, wompi, smartfastpay or wepayout (default: every enabled rail)").
		Check(func() error {
			if st.Rail != "" && !rail.Name(st.Rail).Valid() {
				return fmt.Errorf("%q is not wompi, smartfastpay or wepayout", st.Rail)
			}
			return nil
		})
	st.Rails = railconfig.Bind(s, readerRole)
	return st
}

// need returns an error naming the first empty setting among pairs of
// (env, value).
func need(what string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("config: %s is required for %s", pairs[i], what)
		}
	}
	return nil
}
