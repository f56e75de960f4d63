package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Settings are the dispatcher's configuration, bound to env variables and
// flags by BindConfig.
type Settings struct {
	config.Common
	Group            string
	RedisURL         string
	RedisPrefix      string
	WompiBaseURL     string
	WompiAPIKey      string
	WompiPrincipalID string
	HTTPTimeout      time.Duration
	RecoveryGrace    time.Duration
	// StatusConfirmKeys is STATUS_CONFIRM_KEYS (Config.StatusKeyByKey,
	// inverted).
	StatusConfirmKeys bool
	// LookupEveryPayee is DISPATCHER_LOOKUP_EVERY_PAYEE
	// (Config.LookupEveryPayee).
	LookupEveryPayee bool
	RatePerSecond    float64
	RateBurst        int
	// The single-payout rails' API rate limits (lookups and POSTs).
	SmartFastPayRate, WEpayoutRate ratelimit.RailRate
	DailyLimitCents                int64
	DailyBatchCap                  int
	DeferBalanceRetry              time.Duration
	DedupeWindow                   time.Duration
	LookupPatience                 time.Duration
	RailPatience                   time.Duration
	RefusalLookLimit               time.Duration
	KeyMaxAge                      time.Duration
	DedupeLookback                 time.Duration // removed: set only to refuse it
	LeaseTTL                       time.Duration
	RetryBase, RetryMax            time.Duration
	HealthInterval                 time.Duration
	BanksRefresh                   time.Duration
	InstanceID                     string
	// RetiredRails is DISPATCHER_RETIRED_RAILS (Config.RetiredRails).
	RetiredRails    []rail.Name
	retiredRailsRaw string
	// Rails: SMARTFASTPAY_* and WEPAYOUT_* (pkg/railconfig), which decide
	// the enabled rails.
	Rails *railconfig.Settings
	// RedisHooks are added, in order, to the Redis client Engine builds,
	// before its first command (the start-up PING). No variable or flag
	// sets them: a program that embeds the dispatcher sets them after
	// Parse to observe its Redis calls (the local load run counts commands
	// and round trips per batch with one). A hook runs on every command of
	// every partition worker: it must be safe for concurrent use and cheap,
	// and it must call next, or the dispatcher's Redis calls never happen.
	RedisHooks []redis.Hook
	// FreshKafka is Config.FreshKafka. No variable or flag sets it: a
	// program that creates the Kafka cluster and the Redis itself just
	// before starting the dispatcher (the local run) sets it after Parse.
	FreshKafka bool
}

// railNameForm is the form of a rail's name.
var railNameForm = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// BindConfig binds the dispatcher settings on s: the shared Kafka, topic,
// registry, metrics and logging variables, then the dispatcher's own.
func BindConfig(s *config.Set) *Settings {
	st := &Settings{}
	config.BindCommon(s, &st.Common, "payouts-dispatcher")
	s.String(&st.Group, "group", "DISPATCHER_GROUP", DefaultGroup, "consumer group of the dispatcher replicas").Required()
	s.String(&st.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://): leases, duplicate index, budgets, rate limit").Required().
		Check(func() error { return config.CheckRedisURL(st.RedisURL) })
	s.String(&st.RedisPrefix, "redis-prefix", "REDIS_PREFIX", DefaultPrefix, "prefix of every Redis key (shared with the tracker; no braces)").
		Check(func() error {
			if st.RedisPrefix == "" || strings.ContainsAny(st.RedisPrefix, "{}") {
				return errors.New("must be non-empty and free of braces")
			}
			return nil
		})
	s.String(&st.WompiBaseURL, "wompi-base-url", "WOMPI_BASE_URL", wompi.SandboxBaseURL, "Wompi payouts API root, including /v1")
	s.Secret(&st.WompiAPIKey, "wompi-api-key", "WOMPI_API_KEY", "Wompi x-api-key").Required()
	s.Secret(&st.WompiPrincipalID, "wompi-principal-id", "WOMPI_PRINCIPAL_ID", "Wompi user-principal-id").Required()
	s.Duration(&st.HTTPTimeout, "wompi-http-timeout", "WOMPI_HTTP_TIMEOUT", DefaultHTTPTimeout, "bound of one Wompi call").
		Check(func() error { return config.CheckPositive(st.HTTPTimeout) })
	s.Duration(&st.RecoveryGrace, "recovery-grace", "RECOVERY_GRACE", 0,
		"wait after a Redis loss, plus a third of DISPATCHER_LEASE_TTL and RECOVERY_GRACE - WOMPI_HTTP_TIMEOUT again, before rebuilding the duplicate index from the rails' listings (skipped for Wompi batches on a first start: TOPIC_DISPATCHER_STARTS); must exceed WOMPI_HTTP_TIMEOUT (0: timeout + 5s)").
		Check(func() error {
			if st.RecoveryGrace != 0 && st.RecoveryGrace <= st.HTTPTimeout {
				return fmt.Errorf("must be longer than WOMPI_HTTP_TIMEOUT (%v)", st.HTTPTimeout)
			}
			return nil
		})
	s.Float64(&st.RatePerSecond, "wompi-rate-per-second", "WOMPI_RATE_PER_SECOND", DefaultRatePerSecond, "POST /payouts per second, across all replicas").
		Check(func() error { return config.CheckPositive(st.RatePerSecond) })
	s.Int(&st.RateBurst, "wompi-rate-burst", "WOMPI_RATE_BURST", DefaultRateBurst, "burst of the shared POST rate limit").
		Check(func() error { return config.CheckPositive(st.RateBurst) })
	for _, r := range []struct {
		flag, env, name string
		rate            *ratelimit.RailRate
	}{{"smartfastpay", "SMARTFASTPAY", "SmartFastPay", &st.SmartFastPayRate}, {"wepayout", "WEPAYOUT", "WEpayout", &st.WEpayoutRate}} {
		s.Float64(&r.rate.PerSecond, r.flag+"-rate-per-second", r.env+"_RATE_PER_SECOND", DefaultSingleRatePerSecond,
			r.name+" API calls (lookups and POSTs) per second, across all replicas; the provider publishes no limit").
			Check(func() error { return config.CheckPositive(r.rate.PerSecond) })
		s.Int(&r.rate.Burst, r.flag+"-rate-burst", r.env+"_RATE_BURST", DefaultSingleRateBurst, "burst of "+r.name+"'s shared API rate limit").
			Check(func() error { return config.CheckPositive(r.rate.Burst) })
	}
	s.Int64(&st.DailyLimitCents, "daily-limit-cents", "DAILY_LIMIT_CENTS", wompi.DefaultDailyLimitCents,
		"per-account daily money limit in cents (the lower of this and Wompi's GET /limits holds)").
		Check(func() error { return config.CheckPositive(st.DailyLimitCents) })
	s.Int(&st.DailyBatchCap, "daily-batch-cap", "DAILY_BATCH_CAP", wompi.DailyBatchCap, "batches per Bogota day for the client").
		Check(func() error { return config.CheckPositive(st.DailyBatchCap) })
	s.Duration(&st.DeferBalanceRetry, "defer-balance-retry", "DEFER_BALANCE_RETRY", DefaultDeferBalanceRetry,
		"wait before retrying a batch refused for insufficient balance (EXC_008)").
		Check(func() error { return config.CheckPositive(st.DeferBalanceRetry) })
	s.Duration(&st.DedupeWindow, "dedupe-window", "DEDUPE_WINDOW", DefaultDedupeWindow,
		"how long a requestId is single-use: the duplicate index keeps it that long, and a recovery after a Redis loss rebuilds that span from every rail's listing").
		Check(func() error { return config.CheckPositive(st.DedupeWindow) })
	s.Duration(&st.DedupeLookback, "dedupe-lookback", "DEDUPE_LOOKBACK", 0,
		"removed: use DEDUPE_WINDOW (one window for the index and its rebuild)").
		Check(func() error {
			if st.DedupeLookback != 0 {
				return errors.New("was replaced by DEDUPE_WINDOW, which is both how long a requestId stays single-use and how far back a recovery rebuilds; set DEDUPE_WINDOW instead")
			}
			return nil
		})
	s.String(&st.retiredRailsRaw, "retired-rails", "DISPATCHER_RETIRED_RAILS", "",
		"comma list of single-payout rails (smartfastpay, wepayout, or a newer version's) that a recovery after a Redis loss need not list although a dispatcher with their credentials has started on this Kafka: rails retired for good. A requestId paid on one within DEDUPE_WINDOW and sent again on another rail after the loss is paid again").
		Check(func() error {
			st.RetiredRails = nil
			for _, f := range strings.Split(st.retiredRailsRaw, ",") {
				n := rail.Name(strings.TrimSpace(f))
				if n == "" {
					continue
				}
				// A name this version does not know is taken too: a newer
				// version's rail, named by its start records after a
				// rollback, must be retirable.
				if n == rail.Wompi || !railNameForm.MatchString(string(n)) {
					return fmt.Errorf("%q is not a single-payout rail's name (smartfastpay, wepayout)", n)
				}
				st.RetiredRails = append(st.RetiredRails, n)
			}
			return nil
		})
	s.Duration(&st.RailPatience, "rail-patience", "DISPATCHER_RAIL_PATIENCE", DefaultRailPatience,
		"how long a batch retries a failing rail (any rail; for Wompi also while /health says UNHEALTHY) before its unsettled payees wait on the deferred topic (a minute, doubling per deferral up to 16) (DEFERRED RAIL_UNAVAILABLE)").
		Check(func() error { return config.CheckPositive(st.RailPatience) })
	s.Duration(&st.RefusalLookLimit, "refusal-look-limit", "DISPATCHER_REFUSAL_LOOK_LIMIT", DefaultRefusalLookLimit,
		"how long one look on TOPIC_BATCH_STATUS or TOPIC_STATUS may take for the REJECTED of a batch read again after a Redis data loss; a look that runs out of time is retried and its partition waits (PayoutsRefusalLookFailing): raise it if the log shows the looks' deadline").
		Check(func() error { return config.CheckPositive(st.RefusalLookLimit) })
	s.Duration(&st.LookupPatience, "lookup-patience", "DISPATCHER_LOOKUP_PATIENCE", DefaultLookupPatience,
		"how long to wait for a payout Wompi says exists (409 EXC_022) to be listed by reference before moving its batch aside").
		Check(func() error { return config.CheckPositive(st.LookupPatience) })
	s.Duration(&st.KeyMaxAge, "key-max-age", "DISPATCHER_KEY_MAX_AGE", DefaultKeyMaxAge,
		"age of a batch's first POST past which no POST goes out before a lookup by reference (Wompi forgets an idempotency key after 24 h)").
		Check(func() error {
			if st.KeyMaxAge <= 0 || st.KeyMaxAge >= 24*time.Hour {
				return errors.New("must be positive and shorter than Wompi's 24 h idempotency-key lifetime")
			}
			return nil
		})
	s.Duration(&st.LeaseTTL, "lease-ttl", "DISPATCHER_LEASE_TTL", DefaultLeaseTTL, "claim lease on a batch (renewed while worked on)").
		Check(func() error { return config.CheckPositive(st.LeaseTTL) })
	s.Duration(&st.RetryBase, "retry-base", "DISPATCHER_RETRY_BASE", DefaultRetryBase,
		"first backoff between retries of a failed step (a Wompi or rail call, a Redis or Kafka write); doubles up to DISPATCHER_RETRY_MAX, full jitter").
		Check(func() error { return config.CheckPositive(st.RetryBase) })
	s.Duration(&st.RetryMax, "retry-max", "DISPATCHER_RETRY_MAX", DefaultRetryMax, "cap of the backoff between retries of a failed step").
		Check(func() error {
			if st.RetryMax < st.RetryBase {
				return fmt.Errorf("must not be shorter than DISPATCHER_RETRY_BASE (%v)", st.RetryBase)
			}
			return nil
		})
	s.Duration(&st.HealthInterval, "health-interval", "WOMPI_HEALTH_INTERVAL", DefaultHealthInterval, "period of the GET /health check").
		Check(func() error { return config.CheckPositive(st.HealthInterval) })
	s.Duration(&st.BanksRefresh, "banks-refresh", "WOMPI_BANKS_REFRESH", DefaultBanksRefresh, "age at which the cached GET /banks is refreshed").
		Check(func() error { return config.CheckPositive(st.BanksRefresh) })
	s.String(&st.InstanceID, "instance-id", "DISPATCHER_INSTANCE_ID", "", "owner id of this replica's leases (default: random per start)")
	s.Bool(&st.StatusConfirmKeys, "status-confirm-keys", "STATUS_CONFIRM_KEYS", true,
		"confirm a batch's or poll page's status records with one key (P track:done:<token>); false while replicas of a version before it still run (they cannot read such records), on every tracker and dispatcher")
	s.Bool(&st.LookupEveryPayee, "lookup-every-payee", "DISPATCHER_LOOKUP_EVERY_PAYEE", false,
		"look every single-payout payee up by our id before its POST, even one the duplicate index proves no dispatcher has posted; for a SmartFastPay or WEpayout account that something other than this deployment may pay our requestIds through")
	st.Rails = railconfig.Bind(s, railconfig.Dispatcher)
	return st
}

// Engine builds the engine the settings describe: the Redis client (with
// RedisHooks), the Wompi client, the codec and the Kafka options (kprom
// metrics on reg). The Redis client is closed when the returned close
// function is called.
func (st *Settings) Engine(ctx context.Context, reg prometheus.Registerer, logger *slog.Logger) (*Engine, func(), error) {
	rdb, err := config.RedisClient(st.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	for _, h := range st.RedisHooks {
		rdb.AddHook(h)
	}
	closeAll := func() { _ = rdb.Close() }
	if err := rdb.Ping(ctx).Err(); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("REDIS_URL: ping: %w", err)
	}
	wc, err := wompi.New(wompi.Config{BaseURL: st.WompiBaseURL, APIKey: st.WompiAPIKey, PrincipalID: st.WompiPrincipalID,
		HTTPClient: &http.Client{Timeout: st.HTTPTimeout}, ReadRetries: wompi.DefaultReadRetries})
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("WOMPI_BASE_URL: %w", err)
	}
	singles, err := st.Rails.Singles(st.HTTPTimeout)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	codec, err := events.NewCodec(ctx, events.WithRegistry(st.SchemaRegistryURL), events.WithTopics(st.Topics))
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("SCHEMA_REGISTRY_URL: %w", err)
	}
	opts, err := st.Kafka.Opts(reg, "payouts_dispatcher")
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	opts = append(opts, kgo.WithLogger(ops.KgoLogger(logger)))
	read, err := st.Kafka.Opts(nil, "")
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	e, err := New(Config{
		Kafka: opts, ReadKafka: append(read, kgo.WithLogger(ops.KgoLogger(logger))), Codec: codec, RetiredRails: st.RetiredRails, Topics: st.Topics, Group: st.Group,
		Redis: rdb, Prefix: st.RedisPrefix,
		Wompi:       wompi.NewRail(wc, wompi.RailConfig{BanksTTL: st.BanksRefresh, CallTimeout: st.HTTPTimeout}),
		HTTPTimeout: st.HTTPTimeout, RecoveryGrace: st.RecoveryGrace, DedupeWindow: st.DedupeWindow, LookupPatience: st.LookupPatience, RailPatience: st.RailPatience, RefusalLookLimit: st.RefusalLookLimit,
		KeyMaxAge: st.KeyMaxAge, StatusKeyByKey: !st.StatusConfirmKeys, LookupEveryPayee: st.LookupEveryPayee,
		FreshKafka:    st.FreshKafka,
		RatePerSecond: st.RatePerSecond, RateBurst: st.RateBurst,
		DailyLimitCents: st.DailyLimitCents, DailyBatchCap: st.DailyBatchCap, DeferBalanceRetry: st.DeferBalanceRetry,
		LeaseTTL: st.LeaseTTL, RetryBase: st.RetryBase, RetryMax: st.RetryMax, HealthInterval: st.HealthInterval,
		InstanceID: st.InstanceID, Logger: logger, Registerer: reg, Rails: st.Rails.Enabled(),
		Singles:     singles,
		SingleRates: map[rail.Name]ratelimit.RailRate{rail.SmartFastPay: st.SmartFastPayRate, rail.WEpayout: st.WEpayoutRate},
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return e, closeAll, nil
}

// Run builds the engine from the settings and runs it until ctx is done
// (SIGTERM) inside an ops.Worker: /metrics, /healthz and /readyz on
// MetricsAddr and the group's consumer lag. On ctx done it drains: /readyz
// fails, each partition stops at its next safe point (a POST in flight
// finishes and commits), the replica leaves its group; then the Redis
// client is closed. started, if not nil, gets the bound metrics address
// (useful with port 0).
func (st *Settings) Run(ctx context.Context, logger *slog.Logger, started func(metrics net.Addr)) error {
	reg := ops.NewRegistry()
	if err := st.Rails.Enabled().Register(reg); err != nil {
		return err
	}
	engine, closeDeps, err := st.Engine(ctx, reg, logger)
	if err != nil {
		return err
	}
	defer closeDeps()
	w := st.Worker(reg, st.Group, engine.Ready, logger, started)
	w.Topics = []ops.Topic{{Name: st.Topics.Batches, Setting: "TOPIC_BATCHES"}, {Name: st.Topics.BatchesDeferred, Setting: "TOPIC_BATCHES_DEFERRED"},
		{Name: st.Topics.Status, Setting: "TOPIC_STATUS"}, {Name: st.Topics.BatchStatus, Setting: "TOPIC_BATCH_STATUS"},
		{Name: st.Topics.RequestsDLQ, Setting: "TOPIC_REQUESTS_DLQ"}, {Name: st.Topics.DispatcherStarts, Setting: "TOPIC_DISPATCHER_STARTS"}}
	// Claims, leases and the daily budget live in Redis.
	w.Dependencies = []ops.Dependency{{Name: "redis (REDIS_URL)", Check: func(ctx context.Context) error { return engine.cfg.Redis.Ping(ctx).Err() }}}
	return w.Run(ctx, func(ctx context.Context) error {
		logger.Info("dispatcher started", "brokers", st.Kafka.Brokers, "topics", []string{st.Topics.Batches, st.Topics.BatchesDeferred},
			"group", st.Group, "wompi", st.WompiBaseURL, "rails_enabled", st.Rails.Enabled().Names())
		if err := engine.Run(ctx); err != nil {
			return err
		}
		logger.Info("dispatcher drained")
		return nil
	})
}
