package ctl

import (
	"errors"
	"fmt"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/payout"
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

	// Flags of the tool.
	Output  string        // table or json
	Reveal  bool          // show personal data unmasked
	Timeout time.Duration // bound of the whole command

	// Flags of the subcommands.
	OlderThan time.Duration // stuck
	Day       string        // budget
	Accounts  []string      // budget
}

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
	s.String(&st.RedisPrefix, "redis-prefix", "REDIS_PREFIX", submitted.DefaultPrefix, "prefix of every Redis key (the workers')")
	s.String(&st.WompiBaseURL, "wompi-base-url", "WOMPI_BASE_URL", wompi.SandboxBaseURL, "Wompi payouts API root, including /v1")
	s.Secret(&st.WompiAPIKey, "wompi-api-key", "WOMPI_API_KEY", "Wompi x-api-key")
	s.Secret(&st.WompiPrincipalID, "wompi-principal-id", "WOMPI_PRINCIPAL_ID", "Wompi user-principal-id")
	s.Int64(&st.DailyLimitCents, "daily-limit-cents", "DAILY_LIMIT_CENTS", payout.DefaultDailyLimitCents,
		"per-account daily money limit in cents, as the dispatcher has it").Check(func() error { return config.CheckPositive(st.DailyLimitCents) })
	s.Int(&st.DailyBatchCap, "daily-batch-cap", "DAILY_BATCH_CAP", payout.DailyBatchCap, "batches per Bogota day, as the dispatcher has it").
		Check(func() error { return config.CheckPositive(st.DailyBatchCap) })
	s.Duration(&st.LeaseTTL, "lease-ttl", "DISPATCHER_LEASE_TTL", dispatch.DefaultLeaseTTL, "the dispatcher's lease (dates a batch's last step)").
		Check(func() error { return config.CheckPositive(st.LeaseTTL) })

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
	s.String(&st.Day, "day", "PAYOUTSCTL_DAY", "", "budget: the Bogota day, YYYY-MM-DD (default today)").Check(func() error {
		if st.Day == "" {
			return nil
		}
		_, err := payout.ParseDay(st.Day)
		return err
	})
	s.List(&st.Accounts, "account", "PAYOUTSCTL_ACCOUNTS", "", "budget: origin accounts, comma-separated (default: the provider's GET /accounts)")
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
