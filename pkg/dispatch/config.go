package dispatch

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
)

// Defaults of Config. Each applies when its field is zero.
const (
	DefaultGroup         = "payouts-dispatcher"
	DefaultPrefix        = submitted.DefaultPrefix
	DefaultRatePerSecond = 10.0
	DefaultRateBurst     = 5
	// DefaultSingleRatePerSecond and DefaultSingleRateBurst are a single-payout
	// rail's API rate limit when none is set (the providers publish none).
	DefaultSingleRatePerSecond = 10.0
	DefaultSingleRateBurst     = 5
	DefaultDeferBalanceRetry   = 5 * time.Minute
	// DefaultDedupeWindow is how long a requestId stays single-use: the
	// duplicate index keeps it that long, and a recovery after a Redis loss
	// rebuilds the index from the payouts of that same span.
	DefaultDedupeWindow = 30 * 24 * time.Hour
	// DefaultLookupPatience bounds how long the dispatcher waits for a payout
	// that Wompi says exists (409 EXC_022) to show up in GET
	// /payouts?reference=, before it moves the batch aside (deferred).
	DefaultLookupPatience = 5 * time.Minute
	// DefaultRailPatience and DefaultRailRetry: see Config.RailPatience.
	DefaultRailPatience = 30 * time.Second
	// DefaultRefusalLookLimit: see Config.RefusalLookLimit.
	DefaultRefusalLookLimit = 2 * time.Minute
	DefaultRailRetry        = time.Minute
	DefaultHTTPTimeout      = 30 * time.Second // Wompi client's own default
	DefaultLeaseTTL         = 30 * time.Second
	DefaultHealthInterval   = 10 * time.Second
	DefaultBanksRefresh     = time.Hour
	DefaultRecordTTL        = 30 * 24 * time.Hour
	// DefaultRetryBase and DefaultRetryMax bound the backoff between
	// retries of a failed step (Config.RetryBase, RetryMax).
	DefaultRetryBase = 250 * time.Millisecond
	DefaultRetryMax  = 30 * time.Second
	// DefaultKeyMaxAge is how old a first POST may be before the dispatcher
	// stops trusting the idempotency key (Wompi keeps a key 24 h [doc]) and
	// reconciles by reference before posting again.
	DefaultKeyMaxAge = 23 * time.Hour
)

// Config configures an Engine. Required: Kafka, Codec, Redis, Wompi. The
// zero value of every other field gets the default documented on it.
type Config struct {
	// Kafka holds the base client options (seed brokers, TLS, SASL, kprom
	// hooks): events.KafkaConfig.Opts. The engine adds the consumer group,
	// manual commits and read_committed. Required.
	Kafka []kgo.Opt
	// ReadKafka are the same base options without metric hooks (kprom
	// registers its collectors once per client): a recovery reads
	// Topics.DispatcherStarts with a short-lived client of its own built
	// from them. Default Kafka, which must then carry no kprom hook.
	ReadKafka []kgo.Opt
	// Codec decodes batches and encodes batches and status events. Required.
	Codec *events.Codec
	// Topics: Batches and BatchesDeferred are consumed; BatchesDeferred,
	// Status, BatchStatus and RequestsDLQ (undecodable batches) are produced
	// to, and DispatcherStarts gets one record per process (starts.go).
	// Default events.DefaultTopics().
	Topics events.Topics
	// Group is the consumer group; default DefaultGroup.
	Group string

	// Redis holds every coordination key (see the package doc). Required.
	Redis redis.UniversalClient
	// Prefix starts every key the engine writes; it must not contain
	// braces. Default DefaultPrefix. Replicas of one deployment share it.
	Prefix string

	// Rails are the rails this dispatcher has credentials for
	// (railconfig.Settings.Enabled). Wompi is always among them: its client
	// is required. A batch of another rail is deferred with
	// RAIL_NOT_CONFIGURED; Rails only decides what its log and metric say
	// (not enabled, or enabled but not paid through by this release).
	Rails railconfig.Enabled
	// Singles are the clients of the single-payout rails this dispatcher
	// pays through (SmartFastPay, WEpayout), one per enabled rail. A batch
	// of a rail without a client here is deferred with RAIL_NOT_CONFIGURED.
	Singles map[rail.Name]rail.SinglePayouts
	// RetiredRails are single-payout rails a recovery after a Redis loss
	// need not list although a dispatcher that paid through them has
	// started on this Kafka (starts.go): rails nobody holds credentials
	// for any more. A requestId paid on one of them within the dedupe
	// window and sent again on another rail after the loss is paid again.
	// While a live dispatcher still pays through one (its start record is
	// less than a day old), a recovery that did not list it leaves the
	// epoch incomplete (missingRails).
	RetiredRails []rail.Name
	// SingleRatePerSecond and SingleRateBurst are each single-payout rail's
	// API rate limit (creates and lookups), shared by every replica, unless
	// SingleRates names the rail. Defaults 10/s, burst 5.
	SingleRatePerSecond float64
	SingleRateBurst     int
	// SingleRates overrides the rate limit of a single-payout rail.
	SingleRates map[rail.Name]ratelimit.RailRate
	// RailPatience bounds how long a batch keeps retrying a rail that fails
	// (5xx, 429, timeouts, 401/403; for Wompi also an UNHEALTHY /health
	// and a bank table it cannot fetch): past it, the payees not settled
	// yet wait RailRetry in a copy of the batch on the deferred topic
	// (DEFERRED RAIL_UNAVAILABLE), so one rail's outage does not hold the
	// partition's other batches. Default DefaultRailPatience.
	RailPatience time.Duration
	// RefusalLookLimit bounds one look on the batch status topic or the
	// status topic for the REJECTED of a batch read again after a Redis
	// loss (rejectedOnTopic, payeesRejectedOnTopic). A look that cannot
	// finish in time fails its attempt, which is retried with its
	// partition waiting, its look reading on from where the last one
	// stopped (lookProgress) (payouts_dispatcher_refusal_scans_total
	// {found="error"}, PayoutsRefusalLookFailing). Default
	// DefaultRefusalLookLimit.
	RefusalLookLimit time.Duration
	// RailRetry is how long such payees first wait; each further deferral
	// of the same batch doubles it, up to 16 times (railRetryAfter), so a
	// weekend-long outage does not emit a DEFERRED a minute per payee.
	// Default DefaultRailRetry.
	RailRetry time.Duration
	// SingleConcurrency bounds the payees of one batch sent at once on a
	// single-payout rail; default 8.
	SingleConcurrency int
	// LookupEveryPayee makes every single-payout POST wait for a lookup by
	// our id, even for a payee the duplicate index proves no dispatcher
	// has posted (newPayeeProof): for a rail account that something other
	// than this deployment may pay our requestIds through.
	LookupEveryPayee bool
	// FreshKafka says that the program starting this dispatcher created
	// its Kafka cluster and its Redis itself, moments before, and that
	// nothing else can reach either before this dispatcher's first start
	// (the local run on its own kfake and redis-server): no other
	// dispatcher, of a version from before the start records (which
	// writes none) or of another deployment (whose start records are on
	// its own cluster), can have claimed against this Redis. A first
	// start (starts.go) then skips the single-payout rails' wait too, and
	// its epoch is complete at once (newPayeeProof). No variable or flag
	// sets it: a deployment cannot know that of its cluster and its Redis.
	FreshKafka bool

	// Wompi is Wompi's batch rail (package wompi's NewRail over its
	// Client): the dispatcher knows it only through the rail seam. Its HTTP
	// client's timeout must not exceed HTTPTimeout (the recovery grace
	// period relies on it). Its bank table's age (RailConfig.BanksTTL) is
	// WOMPI_BANKS_REFRESH. Required.
	Wompi rail.BatchRail
	// HTTPTimeout bounds one Wompi call (each POST attempt gets its own
	// context with this deadline). Default DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// RecoveryGrace is how long a POST may take to land (or fail) after it
	// went out, its client's timeout included: recovery waits it, after
	// writing a new epoch, before it lists Wompi's payouts, plus a third of
	// LeaseTTL (the time a job may go on calling before its lease renewal
	// tells it of the loss) plus RecoveryGrace - HTTPTimeout (the lease
	// fence's slack: recoveryWait). A first start waits it only before
	// single-payout lookups (starts.go). It must be longer than
	// HTTPTimeout; default HTTPTimeout + 5 s.
	RecoveryGrace time.Duration
	// StatusLossGrace is how long after the tracker's status epoch marker
	// was written anew after a Redis data loss no SUBMITTED or
	// DEFERRED is emitted on a request whose status key holds nothing, so
	// that an attempt still being produced when Redis lost its lease can
	// write it back first (track.DefaultLossGrace unless set; negative for
	// none, in tests of other things).
	StatusLossGrace time.Duration
	// StatusKeyByKey makes the SUBMITTED of a batch confirmed key by key
	// rather than by one confirmation key (STATUS_CONFIRM_KEYS=false; see
	// track.Config.KeyByKey).
	StatusKeyByKey bool
	// DedupeWindow is how long a requestId is single-use (across accounts
	// and rails): the duplicate index's TTL, and how far back a recovery
	// lists payouts to rebuild it. Default DefaultDedupeWindow.
	DedupeWindow time.Duration
	// LookupPatience: see DefaultLookupPatience.
	LookupPatience time.Duration

	// RatePerSecond and RateBurst are the POST /payouts rate limit shared by
	// every replica (the same Redis key). Defaults 10/s, burst 5.
	RatePerSecond float64
	RateBurst     int
	// DailyLimitCents is an account's daily money limit when Wompi's GET
	// /limits does not give one; when it does, the lower of the two holds.
	// Default: the rail's published limit (Wompi.Limits).
	DailyLimitCents int64
	// DailyBatchCap is the client's batches per Bogota day; default: the
	// rail's published cap (Wompi.Limits, 3,800).
	DailyBatchCap int
	// DeferBalanceRetry is how long a batch refused for insufficient
	// balance (EXC_008) waits; default 5 min.
	DeferBalanceRetry time.Duration

	// LeaseTTL is the claim lease on a batch; it is renewed every third of
	// it while the batch is worked on. Default 30 s.
	LeaseTTL time.Duration
	// HealthInterval is the period of the GET /health checker; default 10 s.
	HealthInterval time.Duration
	// RetryBase and RetryMax bound the capped exponential backoff (full
	// jitter) between retries of a failed step; defaults DefaultRetryBase
	// and DefaultRetryMax. A RetryMax below RetryBase is raised to it.
	RetryBase, RetryMax time.Duration
	// PollInterval is how often a waiting worker looks again: at a deferred
	// batch's NotBefore (on the injected clock), at a busy lease, at a
	// recovery in progress. Default 1 s.
	PollInterval time.Duration
	// MaxQueued is how many fetched records a partition may hold before its
	// fetching pauses; default 8.
	MaxQueued int
	// KeyMaxAge: see DefaultKeyMaxAge.
	KeyMaxAge time.Duration
	// RecordTTL is the life of a batch record; default 30 days, and never
	// shorter than DedupeWindow.
	RecordTTL time.Duration

	// InstanceID names this replica as the owner of its leases; default a
	// random id per Engine (a restarted process waits for its predecessor's
	// leases to expire).
	InstanceID string
	// Now is the business clock: Bogota days, NotBefore, firstPostAt and the
	// event timestamps. Default time.Now. Timeouts always use the wall clock.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() error {
	var errs []error
	if c.SingleRatePerSecond <= 0 {
		c.SingleRatePerSecond = DefaultSingleRatePerSecond
	}
	if c.SingleRateBurst <= 0 {
		c.SingleRateBurst = DefaultSingleRateBurst
	}
	if c.SingleConcurrency <= 0 {
		c.SingleConcurrency = 8
	}
	for n, cl := range c.Singles {
		if cl == nil || n == rail.Wompi || !n.Valid() || cl.Rail() != n {
			errs = append(errs, fmt.Errorf("dispatch: Singles[%q] is not a single-payout client of that rail", n))
		}
	}
	if len(c.Kafka) == 0 {
		errs = append(errs, errors.New("dispatch: Kafka options are required"))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("dispatch: a Codec is required"))
	}
	if c.Redis == nil {
		errs = append(errs, errors.New("dispatch: a Redis client is required"))
	}
	if c.Wompi == nil {
		errs = append(errs, errors.New("dispatch: a Wompi client is required"))
	} else if n := c.Wompi.Rail(); n != rail.Wompi {
		errs = append(errs, fmt.Errorf("dispatch: Wompi is rail %q, want %q", n, rail.Wompi))
	}
	if c.Topics == (events.Topics{}) {
		c.Topics = events.DefaultTopics()
	}
	if err := c.Topics.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("dispatch: prefix %q must not contain braces", c.Prefix))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HTTPTimeout, DefaultHTTPTimeout)
	def(&c.RecoveryGrace, c.HTTPTimeout+5*time.Second)
	if c.RecoveryGrace <= c.HTTPTimeout {
		errs = append(errs, fmt.Errorf("dispatch: RecoveryGrace %v must be longer than HTTPTimeout %v", c.RecoveryGrace, c.HTTPTimeout))
	}
	def(&c.DedupeWindow, DefaultDedupeWindow)
	def(&c.LookupPatience, DefaultLookupPatience)
	def(&c.RailPatience, DefaultRailPatience)
	def(&c.RefusalLookLimit, DefaultRefusalLookLimit)
	def(&c.RailRetry, DefaultRailRetry)
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = DefaultRatePerSecond
	}
	if c.RateBurst <= 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.Wompi != nil {
		lim := c.Wompi.Limits()
		if c.DailyLimitCents <= 0 {
			c.DailyLimitCents = lim.AmountInCents
		}
		if c.DailyBatchCap <= 0 {
			c.DailyBatchCap = lim.Batches
		}
	}
	def(&c.DeferBalanceRetry, DefaultDeferBalanceRetry)
	def(&c.LeaseTTL, DefaultLeaseTTL)
	def(&c.HealthInterval, DefaultHealthInterval)
	def(&c.RetryBase, DefaultRetryBase)
	def(&c.RetryMax, DefaultRetryMax)
	c.RetryMax = max(c.RetryMax, c.RetryBase)
	def(&c.PollInterval, time.Second)
	if c.MaxQueued <= 0 {
		c.MaxQueued = 8
	}
	def(&c.KeyMaxAge, DefaultKeyMaxAge)
	def(&c.RecordTTL, DefaultRecordTTL)
	c.RecordTTL = max(c.RecordTTL, c.DedupeWindow)
	if c.KeyMaxAge >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("dispatch: KeyMaxAge %v must be shorter than Wompi's 24 h key lifetime", c.KeyMaxAge))
	}
	if c.InstanceID == "" {
		c.InstanceID = randomID()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return errors.Join(errs...)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
