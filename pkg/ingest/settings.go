package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Settings are the ingest worker's configuration, bound to env variables
// and flags by BindConfig.
type Settings struct {
	config.Common
	Group           string
	TransactionalID string
	// RedisURL, RedisPrefix and DedupeWindow configure the seen index
	// (REDIS_URL, REDIS_PREFIX, DEDUPE_WINDOW: the dispatcher's names).
	RedisURL         string
	RedisPrefix      string
	DedupeWindow     time.Duration
	SeenTimestamps   bool
	MaxTransactions  int
	MaxBatchBytes    int
	MaxAmountCents   int64
	MaxWait          time.Duration
	MaxWindow        time.Duration
	DailyBatchBudget int
	MaxPendingBytes  int
	StallTimeout     time.Duration
	// SchemaNotFoundRetry: how long a schema id the registry answers 404
	// for is retried before its requests are dead-lettered.
	SchemaNotFoundRetry time.Duration
	// RailRoutes is RAIL_ROUTES: the rail of a request that names none, by
	// currency.
	RailRoutes string
}

// BindConfig binds the ingest settings on s.
func BindConfig(s *config.Set) *Settings { return bindConfig(s, os.Hostname) }

// bindConfig is BindConfig with the host name lookup injected. When the
// host name is unknown (an error or empty), INGEST_TRANSACTIONAL_ID has no
// default, so Parse refuses to start with one line naming it: a default of
// "payouts-ingest-" on every instance would have them fence each other's
// transactions.
func bindConfig(s *config.Set, hostname func() (string, error)) *Settings {
	st := &Settings{}
	config.BindCommon(s, &st.Common, "payouts-ingest")
	txnDefault := ""
	if host, err := hostname(); err == nil && strings.TrimSpace(host) != "" {
		txnDefault = "payouts-ingest-" + strings.TrimSpace(host)
	}
	s.String(&st.Group, "group", "INGEST_GROUP", "payouts-ingest", "consumer group of the ingest instances").Required()
	s.String(&st.TransactionalID, "transactional-id", "INGEST_TRANSACTIONAL_ID", txnDefault,
		"Kafka transactional id: unique per instance and stable across its restarts (a StatefulSet pod name); default payouts-ingest-<host name>, none when the host name is unknown").
		Required()
	s.String(&st.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://; a cluster as ?addr=host:port&addr=...): the seen index, which dead-letters a republished copy of a requestId in any window, on any instance").Required().
		Check(func() error { return config.CheckRedisURL(st.RedisURL) })
	s.String(&st.RedisPrefix, "redis-prefix", "REDIS_PREFIX", DefaultRedisPrefix, "prefix of every Redis key (no braces)").
		Check(func() error {
			if st.RedisPrefix == "" || strings.ContainsAny(st.RedisPrefix, "{}") {
				return errors.New("must be non-empty and free of braces")
			}
			return nil
		})
	s.Duration(&st.DedupeWindow, "dedupe-window", "DEDUPE_WINDOW", DefaultDedupeWindow,
		"how long a requestId is single-use: the seen index remembers it that long (keep it the dispatcher's)").
		Check(func() error {
			// A claim must outlive the transaction of the window that made
			// it: one forgotten while its window is still open lets a copy
			// read at the same time, on another partition or instance,
			// claim the requestId too, and both are batched. A claim is
			// made as early as the window's start, and the window commits
			// as late as its end (BATCH_MAX_WINDOW) plus ingest's
			// transaction timeout (BATCH_MAX_WINDOW + 1m: runWindow's
			// Flush and End share it, and the brokers time a transaction
			// from its first produce, for a window of valid requests its
			// batches at the window's end).
			if least := 2*st.MaxWindow + time.Minute; st.DedupeWindow < least {
				return fmt.Errorf("must be at least 2 x BATCH_MAX_WINDOW + 1m (%v), the longest a window's claim may wait for its commit, got %v", least, st.DedupeWindow)
			}
			return nil
		})
	s.Bool(&st.SeenTimestamps, "seen-timestamps", "INGEST_SEEN_TIMESTAMPS", false,
		"the seen index's claims name their record's timestamp too, so that a copy republished at its original's position after the requests topic was re-created is a copy; turn on once no ingest older than this setting runs")
	s.Int(&st.MaxTransactions, "batch-max-transactions", "BATCH_MAX_TRANSACTIONS", 5000, "close a batch at this many requests").
		Check(func() error {
			if st.MaxTransactions <= 0 || st.MaxTransactions > events.MaxTransactions {
				return fmt.Errorf("must be 1-%d, got %d", events.MaxTransactions, st.MaxTransactions)
			}
			return nil
		})
	s.Int(&st.MaxBatchBytes, "batch-max-bytes", "BATCH_MAX_BYTES", DefaultMaxBatchBytes,
		"close a batch before its encoded record passes this many bytes; the batches topic's max.message.bytes lowers it further").
		Check(func() error {
			if st.MaxBatchBytes < MinBatchBytes || st.MaxBatchBytes > ProducerMaxBytes-RecordOverhead {
				return fmt.Errorf("must be %d-%d (the producer's record cap %d less %d bytes of record framing), got %d",
					MinBatchBytes, ProducerMaxBytes-RecordOverhead, ProducerMaxBytes, RecordOverhead, st.MaxBatchBytes)
			}
			return nil
		})
	s.Int64(&st.MaxAmountCents, "batch-max-amount-cents", "BATCH_MAX_AMOUNT_CENTS", wompi.DefaultDailyLimitCents,
		"close a batch before its total passes this many cents (default: Wompi's daily limit)").
		Check(func() error { return config.CheckPositive(st.MaxAmountCents) })
	s.Duration(&st.MaxWait, "batch-max-wait", "BATCH_MAX_WAIT", 5*time.Second, "shortest batching window: the age at which open batches close when the daily budget allows").
		Check(func() error { return config.CheckPositive(st.MaxWait) })
	s.Duration(&st.MaxWindow, "batch-max-window", "BATCH_MAX_WINDOW", 2*time.Minute, "longest batching window the daily budget may ask for").
		Check(func() error {
			if st.MaxWindow < st.MaxWait {
				return fmt.Errorf("must be at least BATCH_MAX_WAIT (%v)", st.MaxWait)
			}
			return nil
		})
	s.Int(&st.DailyBatchBudget, "batch-daily-budget", "BATCH_DAILY_BUDGET", 3000, "batches a day all ingest instances aim at (Wompi allows 3,800)").
		Check(func() error {
			if st.DailyBatchBudget <= 0 || st.DailyBatchBudget > wompi.DailyBatchCap {
				return fmt.Errorf("must be 1-%d, got %d", wompi.DailyBatchCap, st.DailyBatchBudget)
			}
			return nil
		})
	s.Int(&st.MaxPendingBytes, "max-pending-bytes", "INGEST_MAX_PENDING_BYTES", 64<<20, "end a window early once open batches hold this many bytes").
		Check(func() error { return config.CheckPositive(st.MaxPendingBytes) })
	s.Duration(&st.StallTimeout, "stall-timeout", "INGEST_STALL_TIMEOUT", 0,
		"restart the Kafka session after owning waiting requests this long without consuming any (default: transaction timeout + 30s)").
		Check(func() error {
			if st.StallTimeout < 0 {
				return fmt.Errorf("must not be negative, got %v", st.StallTimeout)
			}
			return nil
		})
	s.Duration(&st.SchemaNotFoundRetry, "schema-registry-not-found-retry", "SCHEMA_REGISTRY_NOT_FOUND_RETRY", events.DefaultNotFoundRetry,
		"retry a schema id the registry answers 404 for (a lagging follower) this long, with backoff, before dead-lettering its requests").
		Check(func() error {
			if st.SchemaNotFoundRetry < 0 || st.SchemaNotFoundRetry > time.Hour {
				return fmt.Errorf("must be 0s-1h, got %v", st.SchemaNotFoundRetry)
			}
			return nil
		})
	s.String(&st.RailRoutes, "rail-routes", "RAIL_ROUTES", rail.DefaultRoutes,
		"the rail of a request whose rail field is null, by currency: CUR=rail,... (rails: wompi, smartfastpay, wepayout)").
		Check(func() error {
			_, err := rail.ParseRoutes(st.RailRoutes)
			return err
		})
	return st
}

// Engine builds the engine the settings describe, registering its metrics
// (and the Kafka client's, via kprom) on reg. The Redis client (checked
// with a PING, so a wrong REDIS_URL stops the worker at start) is closed by
// the returned function.
func (st *Settings) Engine(ctx context.Context, reg prometheus.Registerer, logger *slog.Logger) (*Engine, func(), error) {
	rdb, err := config.RedisClient(st.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	closeRedis := func() { _ = rdb.Close() }
	fail := func(err error) (*Engine, func(), error) {
		closeRedis()
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return fail(fmt.Errorf("REDIS_URL: ping: %w", err))
	}
	codec, err := events.NewCodec(ctx, events.WithRegistry(st.SchemaRegistryURL), events.WithTopics(st.Topics),
		events.WithNotFoundRetry(st.SchemaNotFoundRetry))
	if err != nil {
		return fail(fmt.Errorf("schema registry: %w", err))
	}
	opts, err := st.Kafka.Opts(reg, "payouts_ingest")
	if err != nil {
		return fail(err)
	}
	opts = append(opts, kgo.WithLogger(ops.KgoLogger(logger)))
	routes, err := rail.ParseRoutes(st.RailRoutes)
	if err != nil {
		return fail(fmt.Errorf("RAIL_ROUTES: %w", err))
	}
	e, err := New(Config{
		Routes:           routes,
		Kafka:            opts,
		Codec:            codec,
		Topics:           st.Topics,
		Group:            st.Group,
		TransactionalID:  st.TransactionalID,
		Redis:            rdb,
		RedisPrefix:      st.RedisPrefix,
		DedupeWindow:     st.DedupeWindow,
		SeenTimestamps:   st.SeenTimestamps,
		MaxTransactions:  st.MaxTransactions,
		MaxBatchBytes:    st.MaxBatchBytes,
		MaxAmountCents:   st.MaxAmountCents,
		MaxWait:          st.MaxWait,
		MaxWindow:        st.MaxWindow,
		DailyBatchBudget: st.DailyBatchBudget,
		MaxPendingBytes:  st.MaxPendingBytes,
		StallTimeout:     st.StallTimeout,
		Logger:           logger,
		Registerer:       reg,
	})
	if err != nil {
		return fail(err)
	}
	return e, closeRedis, nil
}

// Run builds the engine from the settings and runs it until ctx is done
// (SIGTERM) inside an ops.Worker: /metrics, /healthz and /readyz on
// MetricsAddr and the group's consumer lag. On ctx done it drains: /readyz
// fails, the open window is flushed and committed, the instance leaves its
// group. started, if not nil, gets the bound metrics address (useful with
// port 0).
func (st *Settings) Run(ctx context.Context, logger *slog.Logger, started func(metrics net.Addr)) error {
	reg := ops.NewRegistry()
	engine, closeDeps, err := st.Engine(ctx, reg, logger)
	if err != nil {
		return err
	}
	defer closeDeps()
	w := st.Worker(reg, st.Group, engine.Ready, logger, started)
	w.Topics = []ops.Topic{{Name: st.Topics.Requests, Setting: "TOPIC_REQUESTS"}, {Name: st.Topics.Batches, Setting: "TOPIC_BATCHES"},
		{Name: st.Topics.Status, Setting: "TOPIC_STATUS"}, {Name: st.Topics.RequestsDLQ, Setting: "TOPIC_REQUESTS_DLQ"}}
	// Without the seen index no window commits: not ready while Redis is down.
	w.Dependencies = []ops.Dependency{{Name: "redis (REDIS_URL)", Check: func(ctx context.Context) error { return engine.cfg.Redis.Ping(ctx).Err() }}}
	return w.Run(ctx, func(ctx context.Context) error {
		logger.Info("ingest started", "topic", st.Topics.Requests, "group", st.Group, "transactional_id", st.TransactionalID)
		if err := engine.Run(ctx); err != nil {
			return err
		}
		logger.Info("ingest drained", "requests_committed", engine.Committed())
		return nil
	})
}
