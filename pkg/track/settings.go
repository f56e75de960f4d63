package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Settings are the tracker's configuration, bound to env variables and
// flags by BindConfig.
type Settings struct {
	config.Common
	RedisURL          string
	RedisPrefix       string
	WompiBaseURL      string
	WompiAPIKey       string
	WompiPrincipalID  string
	WompiEventsSecret string
	TrackerAddr       string
	PollInterval      time.Duration
	PollMaxBackoff    time.Duration
	// DedupeWindow is DEDUPE_WINDOW (Config.DedupeWindow).
	DedupeWindow   time.Duration
	ProduceTimeout time.Duration
	DrainTimeout   time.Duration
	// MaxConcurrentWebhooks is TRACKER_MAX_CONCURRENT_WEBHOOKS (see
	// Config.MaxConcurrentWebhooks).
	MaxConcurrentWebhooks int
	// StatusConfirmKeys is STATUS_CONFIRM_KEYS (Config.KeyByKey, inverted).
	StatusConfirmKeys bool
	// Rails: SMARTFASTPAY_* and WEPAYOUT_* (pkg/railconfig), which decide
	// the enabled rails. Run builds a client for each enabled one: its
	// webhook path and its handed-off payouts are tracked; a rail not
	// enabled answers its webhooks 404.
	Rails *railconfig.Settings
	// TopicWait bounds how long Run waits at start for the brokers and the
	// status topics (ops.CheckTopics). Zero: no wait. BindConfig sets
	// ops.DefaultTopicWait; it is not a setting.
	TopicWait time.Duration
}

// DefaultMaxConcurrentWebhooks is the default of
// TRACKER_MAX_CONCURRENT_WEBHOOKS: with 1 MiB bodies it keeps what webhooks
// can hold at once to some tens of MiB.
const DefaultMaxConcurrentWebhooks = 32

// BindConfig binds the tracker settings on s: the common ones (Kafka,
// TOPIC_*, SCHEMA_REGISTRY_URL, METRICS_ADDR, LOG_*), REDIS_URL,
// REDIS_PREFIX, the WOMPI_* ones (the three credentials are secrets that may
// come from *_FILE), TRACKER_ADDR, POLL_INTERVAL, POLL_MAX_BACKOFF,
// DEDUPE_WINDOW, TRACKER_PRODUCE_TIMEOUT,
// TRACKER_DRAIN_TIMEOUT, TRACKER_MAX_CONCURRENT_WEBHOOKS, and the rail
// settings (railconfig.Bind).
func BindConfig(s *config.Set) *Settings {
	st := &Settings{TopicWait: ops.DefaultTopicWait}
	config.BindCommon(s, &st.Common, "payouts-tracker")
	s.String(&st.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://): last-known statuses, the submitted hand-off, the polling schedule").
		Required().Check(func() error { return config.CheckRedisURL(st.RedisURL) })
	s.String(&st.RedisPrefix, "redis-prefix", "REDIS_PREFIX", submitted.DefaultPrefix, "prefix of every Redis key (the same as the dispatcher's)").
		Check(func() error {
			if st.RedisPrefix == "" || strings.ContainsAny(st.RedisPrefix, "{}") {
				return errors.New("must be non-empty and free of braces, as the dispatcher's")
			}
			return nil
		})
	s.String(&st.WompiBaseURL, "wompi-base-url", "WOMPI_BASE_URL", wompi.SandboxBaseURL, "Wompi payouts API root, with the version").
		Check(func() error {
			u, err := url.Parse(st.WompiBaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an http(s) URL", st.WompiBaseURL)
			}
			return nil
		})
	s.Secret(&st.WompiAPIKey, "wompi-api-key", "WOMPI_API_KEY", "Wompi API key (x-api-key)").Required()
	s.Secret(&st.WompiPrincipalID, "wompi-principal-id", "WOMPI_PRINCIPAL_ID", "Wompi principal user id (user-principal-id)").Required()
	s.Secret(&st.WompiEventsSecret, "wompi-events-secret", "WOMPI_EVENTS_SECRET", "Wompi events secret: verifies webhook checksums").Required()
	s.String(&st.TrackerAddr, "tracker-addr", "TRACKER_ADDR", ":8080", "listen address of POST /webhooks/wompi, /webhooks/smartfastpay and /webhooks/wepayout").
		Check(func() error { return config.CheckAddr(st.TrackerAddr) })
	s.Duration(&st.PollInterval, "poll-interval", "POLL_INTERVAL", 5*time.Second, "pause between polling rounds (each payout has its own backoff by age)").
		Check(func() error { return config.CheckPositive(st.PollInterval) })
	s.Duration(&st.PollMaxBackoff, "poll-max-backoff", "POLL_MAX_BACKOFF", 30*time.Minute, "cap of a payout's polling backoff by age (10s young, up to 30m for ACH)").
		Check(func() error { return config.CheckPositive(st.PollMaxBackoff) })
	s.Duration(&st.DedupeWindow, "dedupe-window", "DEDUPE_WINDOW", 30*24*time.Hour,
		"how long a requestId is single-use (the dispatcher's and ingest's): a payout under it made more than half of that before the one the dispatcher adopted is an earlier use's").
		Check(func() error { return config.CheckPositive(st.DedupeWindow) })
	s.Duration(&st.ProduceTimeout, "produce-timeout", "TRACKER_PRODUCE_TIMEOUT", 5*time.Second, "bound of one acks=all produce; past it the webhook gets 503").
		Check(func() error { return config.CheckPositive(st.ProduceTimeout) })
	s.Duration(&st.DrainTimeout, "drain-timeout", "TRACKER_DRAIN_TIMEOUT", 15*time.Second, "on SIGTERM, how long in-flight webhooks may take to finish").
		Check(func() error { return config.CheckPositive(st.DrainTimeout) })
	s.Int(&st.MaxConcurrentWebhooks, "max-concurrent-webhooks", "TRACKER_MAX_CONCURRENT_WEBHOOKS", DefaultMaxConcurrentWebhooks,
		"webhooks handled at once by one replica; one more gets 503 with Retry-After").
		Check(func() error { return config.CheckPositive(st.MaxConcurrentWebhooks) })
	s.Bool(&st.StatusConfirmKeys, "status-confirm-keys", "STATUS_CONFIRM_KEYS", true,
		"confirm a batch's or poll page's status records with one key (P track:done:<token>); false while replicas of a version before it still run (they cannot read such records), on every tracker and dispatcher")
	st.Rails = railconfig.Bind(s, railconfig.Tracker)
	return st
}

// Run builds the tracker from the settings and serves until ctx is done
// (SIGTERM): the webhook listener on TrackerAddr, /metrics /healthz /readyz
// on MetricsAddr, and the poller. On ctx done it drains: /readyz fails at
// once, the webhook listener stops accepting and finishes in-flight
// webhooks (up to DrainTimeout), the poller stops, the producer flushes.
// started, if not nil, gets the bound addresses (useful with port 0).
func (st *Settings) Run(ctx context.Context, logger *slog.Logger, started func(webhook, metrics net.Addr)) error {
	reg := ops.NewRegistry()
	var health ops.Health
	if err := st.Rails.Enabled().Register(reg); err != nil {
		return err
	}

	codec, err := events.NewCodec(ctx, events.WithRegistry(st.SchemaRegistryURL), events.WithTopics(st.Topics))
	if err != nil {
		return fmt.Errorf("SCHEMA_REGISTRY_URL: %w", err)
	}
	kopts, err := st.Kafka.Opts(reg, "payouts_tracker")
	if err != nil {
		return err
	}
	read, err := st.Kafka.Opts(nil, "")
	if err != nil {
		return err
	}
	rdb, err := config.RedisClient(st.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	defer rdb.Close()
	wc, err := wompi.New(wompi.Config{BaseURL: st.WompiBaseURL, APIKey: st.WompiAPIKey, PrincipalID: st.WompiPrincipalID,
		HTTPClient: &http.Client{Timeout: 10 * time.Second}, ReadRetries: wompi.DefaultReadRetries})
	if err != nil {
		return fmt.Errorf("WOMPI_BASE_URL: %w", err)
	}
	cfg := Config{
		Kafka: kopts, ReadKafka: read, Codec: codec, Topics: st.Topics, Redis: rdb, Prefix: st.RedisPrefix,
		Wompi:          wompi.NewRail(wc, wompi.RailConfig{EventsSecret: st.WompiEventsSecret}),
		ProduceTimeout: st.ProduceTimeout, PollInterval: st.PollInterval, PollMaxBackoff: st.PollMaxBackoff,
		DedupeWindow:          st.DedupeWindow,
		MaxConcurrentWebhooks: st.MaxConcurrentWebhooks, Logger: logger, Registerer: reg,
		KeyByKey: !st.StatusConfirmKeys,
	}
	if err := st.singleRails(&cfg, logger); err != nil {
		return err
	}
	engine, err := New(cfg)
	if err != nil {
		return err
	}
	defer engine.Close()
	// Every webhook ends in a produce: refuse to start on a missing topic
	// (after DefaultTopicWait) rather than answer 503 to all of them, and
	// be ready only while Redis answers and Kafka can take a produce.
	topics := []ops.Topic{{Name: st.Topics.Status, Setting: "TOPIC_STATUS"}, {Name: st.Topics.BatchStatus, Setting: "TOPIC_BATCH_STATUS"}}
	if err := ops.CheckTopics(ctx, engine.producer, st.Kafka.Brokers, topics, st.TopicWait, logger); err != nil {
		return err
	}
	deps := []ops.Dependency{{Name: "redis (REDIS_URL)", Check: engine.Ping}, ops.KafkaTopics(engine.producer, topics)}

	hookLn, err := net.Listen("tcp", st.TrackerAddr)
	if err != nil {
		return fmt.Errorf("TRACKER_ADDR: %w", err)
	}
	metricsLn, err := net.Listen("tcp", st.MetricsAddr)
	if err != nil {
		hookLn.Close()
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	hookSrv := NewWebhookServer(st.TrackerAddr, engine)
	metricsSrv := ops.NewServer(st.MetricsAddr, ops.Handler(reg, &health))
	errc := make(chan error, 2)
	go func() { errc <- serve(hookSrv, hookLn) }()
	go func() { errc <- serve(metricsSrv, metricsLn) }()
	if started != nil {
		started(hookLn.Addr(), metricsLn.Addr())
	}

	pollCtx, stopPoll := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = engine.RunPoller(pollCtx) }()
	go func() { // readiness follows Redis and Kafka
		defer wg.Done()
		for {
			if err := ops.CheckDependencies(pollCtx, deps); pollCtx.Err() == nil {
				health.SetFailing(err)
			}
			select {
			case <-pollCtx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	logger.Info("tracker started", "webhooks", hookLn.Addr().String(), "metrics", metricsLn.Addr().String(),
		"brokers", st.Kafka.Brokers, "topic_status", st.Topics.Status, "topic_batch_status", st.Topics.BatchStatus,
		"rails_enabled", st.Rails.Enabled().Names())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	health.SetDraining()
	logger.Info("tracker draining")
	sctx, cancel := context.WithTimeout(context.Background(), st.DrainTimeout)
	defer cancel()
	if err := hookSrv.Shutdown(sctx); err != nil {
		logger.Warn("webhook server shutdown", "err", err)
	}
	stopPoll()
	wg.Wait()
	engine.Close()
	mctx, mcancel := context.WithTimeout(context.Background(), time.Second)
	defer mcancel()
	_ = metricsSrv.Shutdown(mctx)
	logger.Info("tracker stopped")
	return runErr
}

// singleRails builds the clients of the enabled single-payout rails into
// cfg (railconfig has validated their settings).
func (st *Settings) singleRails(cfg *Config, logger *slog.Logger) error {
	en := st.Rails.Enabled()
	if en[rail.SmartFastPay] {
		sc := st.Rails.SmartFastPay
		sc.Logger = logger
		c, err := smartfastpay.New(sc)
		if err != nil {
			return err // names the variable; never a secret
		}
		cfg.SmartFastPay = c
	}
	if en[rail.WEpayout] {
		wc := st.Rails.WEpayout
		c, err := wepayout.New(wc)
		if err != nil {
			return err
		}
		cfg.WEpayout, cfg.WEpayoutAPIKey = c, wc.APIKey
	}
	return nil
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
