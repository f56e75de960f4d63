package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Config configures an Engine. The zero value of each knob gets the
// default documented on it.
type Config struct {
	// Routes chooses the rail of a request that names none, by currency;
	// default rail.DefaultRoutes.
	Routes rail.Routes
	// Kafka holds the base client options: seed brokers, TLS, SASL,
	// metrics hooks (events.KafkaConfig.Opts). Required.
	Kafka []kgo.Opt
	// Codec decodes requests and encodes batches and status events. Required.
	Codec  *events.Codec
	Topics events.Topics
	// Group is the consumer group; default "payouts-ingest".
	Group string
	// TransactionalID must be unique per running instance and stable
	// across its restarts, so that a restarted instance fences and aborts
	// its predecessor's open transaction at once. Required.
	TransactionalID string

	// Redis holds the seen index, which every ingest instance shares: a
	// requestId already held by another record (a republished copy, in
	// any window, on any instance) is dead-lettered as DUPLICATE_REQUEST
	// and never gets a status event. Required: while it cannot be reached,
	// windows abort and are re-read, and nothing is batched unchecked.
	Redis redis.UniversalClient
	// RedisPrefix starts every key of the seen index; default
	// DefaultRedisPrefix. It must not contain braces.
	RedisPrefix string
	// DedupeWindow is how long the seen index remembers a requestId;
	// default DefaultDedupeWindow (the dispatcher's DEDUPE_WINDOW default).
	DedupeWindow time.Duration
	// SeenTimestamps makes a claim of the seen index name its record's
	// timestamp too ("<partition>:<offset>:<timestamp ms>"), so that a
	// copy republished at its original's old position after the requests
	// topic was re-created is told from the original read again. Off by
	// default: an ingest release older than the setting would take a claim
	// with a timestamp, of a window a newer instance aborted (a rebalance
	// during a rolling upgrade), for another record's, and dead-letter its
	// requests as DUPLICATE_REQUEST. Turn it on once no older instance
	// runs.
	SeenTimestamps bool

	// MaxTransactions closes a batch at this many requests; default 5,000.
	MaxTransactions int
	// MaxBatchBytes closes a batch before its encoded PayoutBatch value
	// would pass this many bytes; default DefaultMaxBatchBytes (900,000).
	// It must be MinBatchBytes to ProducerMaxBytes-RecordOverhead. Each
	// Kafka session lowers it further, below the batches topic's
	// max.message.bytes as the brokers report it, so a batch record always
	// fits the producer and the topic.
	MaxBatchBytes int
	// MaxAmountCents closes a batch before its total would pass this;
	// default Wompi's daily limit, so a batch never exceeds it. A single
	// request above it is batched alone.
	MaxAmountCents int64
	// MaxWait is the shortest batching window, the age at which an open
	// batch is closed when the budget allows; default 5 s.
	MaxWait time.Duration
	// MaxWindow caps the window the daily budget asks for; default 2 min.
	// It must stay well under the transaction timeout.
	MaxWindow time.Duration
	// DailyBatchBudget is how many batches a day all ingest instances
	// together aim at (see Window); default 3,000.
	DailyBatchBudget int
	// MaxPendingBytes ends a window early once the open batches hold this
	// many request bytes, bounding memory under backpressure; default 64 MiB.
	MaxPendingBytes int
	// MaxPollRecords bounds one poll; default 10,000.
	MaxPollRecords int
	// TransactionTimeout is the broker-side timeout of a transaction;
	// default MaxWindow + 1 min.
	TransactionTimeout time.Duration
	// StallTimeout is how long the instance may own partitions that hold
	// unconsumed requests while it consumes none, before it declares its
	// Kafka session stalled and starts a new one (leave the group, rejoin,
	// fence its own transactional id). Default TransactionTimeout + 30 s:
	// longer than the one legitimate wait, a stable offset fetch blocked by
	// another instance's open transaction until the broker times it out.
	StallTimeout time.Duration
	// FetchMaxPartitionBytes caps what one fetch takes from one partition
	// (Kafka still returns a first record batch larger than it, so nothing
	// stalls). Default DefaultFetchMaxPartitionBytes: franz-go's 1 MiB per
	// partition, decompressed several times over, kept ~30 MiB of fetched
	// requests in memory at a time while ingest batches them far faster
	// than that (docs/performance.md).
	FetchMaxPartitionBytes int32

	// Now dates records and validation; default time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() error {
	if c.Routes == nil {
		c.Routes, _ = rail.ParseRoutes(rail.DefaultRoutes)
	}
	if len(c.Kafka) == 0 {
		return errors.New("ingest: Kafka options are required")
	}
	if c.Codec == nil {
		return errors.New("ingest: a Codec is required")
	}
	if c.TransactionalID == "" {
		return errors.New("ingest: TransactionalID is required")
	}
	if c.Redis == nil {
		return errors.New("ingest: a Redis client is required (the seen index)")
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") {
		return errors.New("ingest: RedisPrefix must not contain braces")
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.FetchMaxPartitionBytes <= 0 {
		c.FetchMaxPartitionBytes = DefaultFetchMaxPartitionBytes
	}
	if c.Topics == (events.Topics{}) {
		c.Topics = events.DefaultTopics()
	}
	if c.Group == "" {
		c.Group = "payouts-ingest"
	}
	if c.MaxTransactions <= 0 {
		c.MaxTransactions = 5000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxBatchBytes < MinBatchBytes || c.MaxBatchBytes > ProducerMaxBytes-RecordOverhead {
		return fmt.Errorf("ingest: MaxBatchBytes must be %d-%d, got %d", MinBatchBytes, ProducerMaxBytes-RecordOverhead, c.MaxBatchBytes)
	}
	if c.MaxAmountCents <= 0 {
		c.MaxAmountCents = wompi.DefaultDailyLimitCents
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Second
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = 2 * time.Minute
	}
	c.MaxWindow = max(c.MaxWindow, c.MaxWait)
	if c.DailyBatchBudget <= 0 {
		c.DailyBatchBudget = 3000
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 64 << 20
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 10000
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = c.MaxWindow + time.Minute
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = c.TransactionTimeout + 30*time.Second
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
	return nil
}

// Record size limits. A batch is one Kafka record, so its encoded value
// must fit the producer's record-batch cap and the topic's
// max.message.bytes, with room for the record's framing.
const (
	// ProducerMaxBytes is the producer's record-batch cap
	// (kgo.ProducerBatchMaxBytes), set explicitly: franz-go's default, just
	// under Kafka's default max.message.bytes (1,048,588). Each session
	// lowers it per topic to the topic's max.message.bytes.
	ProducerMaxBytes = 1_000_012
	// RecordOverhead is what a record batch holding one record adds around
	// its value: the batch header (61 bytes), the record's varints and a key
	// of up to 64 bytes, rounded up.
	RecordOverhead = 512
	// MaxRejectedBytes bounds a REJECTED event: one that repeats a
	// requestId or originAccountId so long (each is up to 256 KiB when
	// invalid) that the event would be larger is not sent, and the request
	// is dead-lettered instead. Valid fields make events under 2 KB.
	MaxRejectedBytes = 16 << 10
	// DefaultMaxBatchBytes is BATCH_MAX_BYTES's default: room for 5,000
	// transactions of about 180 bytes, and 10% under ProducerMaxBytes.
	DefaultMaxBatchBytes = 900_000
	// MinBatchBytes is the smallest byte cap allowed: a valid request
	// (names, emails and ids have bounded lengths) always fits alone in it.
	MinBatchBytes = 4096
)

// Reason codes of the REJECTED events ingest emits besides validation's
// (payout.Reason*).
const (
	// ReasonRequestTooLarge: the request does not fit in a batch record on
	// its own (BATCH_MAX_BYTES, or the batches topic's max.message.bytes).
	ReasonRequestTooLarge payout.Reason = "REQUEST_TOO_LARGE"
	// ReasonSchemaNotFound: the request's writer schema is unknown (a
	// Confluent schema id the registry did not know for
	// SCHEMA_REGISTRY_NOT_FOUND_RETRY, or an unknown single-object
	// fingerprint). The bytes are in the DLQ.
	ReasonSchemaNotFound payout.Reason = "SCHEMA_NOT_FOUND"
	// ReasonUndecodable: the request's bytes do not decode. The bytes are
	// in the DLQ.
	ReasonUndecodable payout.Reason = "UNDECODABLE"
)

// Engine is one ingest instance. Run it once.
type Engine struct {
	cfg Config
	m   *metrics
	agg *aggregator

	sess    *kgo.GroupTransactSession
	ready   atomic.Bool
	revoked atomic.Bool

	mu        sync.Mutex
	owned     map[int32]bool // partitions of the requests topic we own
	partTotal int            // partitions of the requests topic; 0 = unknown

	seen int64 // records handed to process, ever (the stall watchdog's clock)

	committed  atomic.Int64 // requests whose outcome was committed
	windowReqs int64

	// index is the seen index: a record whose requestId another record
	// holds is a copy, dead-lettered (DUPLICATE_REQUEST) with no status
	// event, whether the other record was in this window or in any
	// earlier one, on this instance or another.
	index seenIndex
	// The current poll, decoded before its requestIds are claimed in one
	// round trip; reused poll after poll.
	polled  []*kgo.Record
	decoded []payout.Request
	decErrs []error
	ids     []string
	values  []string
	valBuf  []byte // the seen-index values of the poll, one after another
	valEnds []int  // where each record's value ends in valBuf
	copies  []bool
	// afterClaim, a test hook, runs after each successful claim; an error
	// aborts the window there, the claims written (a crash between the
	// Redis write and the commit).
	afterClaim func() error

	produceErr atomic.Pointer[error]
	tooLarge   atomic.Bool // a produce failed with MESSAGE_TOO_LARGE this window
	pending    sync.WaitGroup
	failures   int // windows aborted in a row for a transient or produce error

	// limits holds the max.message.bytes of each output topic, as the
	// brokers reported it at the session's start (missing: unknown),
	// lowered to what refused records taught (learned).
	limits atomic.Pointer[map[string]int32]
	// learned holds, per output topic, a limit guessed from a record the
	// brokers refused as too large (see learnLimit): kept across sessions,
	// so that a limit the brokers will not describe is still found.
	learnedMu sync.Mutex
	learned   map[string]int32
	refused   map[string]map[int32]int // bytes refused this window, per topic and partition

	// sessions counts the Kafka sessions started; onSession, a test hook,
	// sees each new session's client.
	sessions  int
	onSession func(n int, cl *kgo.Client)

	// slab holds encoded values and keys of the current window's status
	// records, in chunks that never move once written (a full chunk is set
	// aside, not copied into a bigger one); chunks are reused window after
	// window. recs holds those records themselves, for as long.
	slab slab
	recs recordArena
	// eventIDs hands out the BATCHED events' eventIds, which are only read
	// while their event is encoded, a chunk of them per allocation.
	eventIDs payout.EventIDArena
	// promise is every produced record's promise, made once (a closure per
	// record would be an allocation per request).
	promise func(*kgo.Record, error)
}

// New validates cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, m: m, agg: newAggregator(cfg.Topics.Requests, cfg.MaxTransactions, cfg.MaxAmountCents, cfg.MaxBatchBytes),
		index: seenIndex{rdb: cfg.Redis, prefix: cfg.RedisPrefix, ttl: cfg.DedupeWindow}}
	e.promise = e.produced
	return e, nil
}

// Committed returns how many requests (batched, rejected or dead-lettered)
// this instance has committed so far.
func (e *Engine) Committed() int64 { return e.committed.Load() }

// Ready reports whether the engine has joined its group and is consuming.
func (e *Engine) Ready() bool { return e.ready.Load() }

// Run consumes until ctx is cancelled, then drains: the open window is
// flushed and committed, and the instance leaves its group. It returns nil
// after a clean drain, or the error that stopped it (a fenced or failed
// transactional producer is not retryable: restart the process).
//
// A session that stalls (see Config.StallTimeout) is closed and replaced
// in place; payouts_ingest_stalls_total counts it.
func (e *Engine) Run(ctx context.Context) error {
	for {
		err := e.runSession(ctx)
		switch {
		case ctx.Err() != nil:
			return err
		case errors.Is(err, errStalled):
			e.m.stalls.Inc()
			e.cfg.Logger.Warn("ingest: starting a new Kafka session after a stall")
		case errors.Is(err, errTooLarge):
			e.cfg.Logger.Warn("ingest: starting a new Kafka session to read the topics' max.message.bytes again")
		case errors.Is(err, errUnconfirmedCommit):
			e.cfg.Logger.Warn("ingest: starting a new Kafka session to read the group's committed offsets from the brokers")
		default:
			return err
		}
	}
}

// errStalled ends a session that owns waiting requests and consumes none.
var errStalled = errors.New("ingest: session stalled")

// errTooLarge ends a session whose window aborted because a record was too
// large for its topic: the next session reads the topics' limits again.
var errTooLarge = errors.New("ingest: a record was too large for its topic")

// errUnconfirmedCommit ends a session whose window End reported aborted
// although the brokers may have committed it (see commitLanded): the next
// session resumes from the group's committed offsets as the brokers hold
// them, not from the client's own record of them.
var errUnconfirmedCommit = errors.New("ingest: a window reported aborted may have been committed")

func (e *Engine) setOwned(m map[string][]int32, own bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range m[e.cfg.Topics.Requests] {
		if own {
			e.owned[p] = true
		} else {
			delete(e.owned, p)
		}
	}
	if own {
		e.partTotal = 0 // look the topic up again
	}
}

func (e *Engine) assigned() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.owned)
}

// DefaultFetchMaxPartitionBytes is Config.FetchMaxPartitionBytes's default.
const DefaultFetchMaxPartitionBytes = 256 << 10

// runSession runs one Kafka session (one client, one group membership).
func (e *Engine) runSession(ctx context.Context) error {
	e.mu.Lock()
	e.owned = map[int32]bool{}
	e.mu.Unlock()
	opts := append([]kgo.Opt{}, e.cfg.Kafka...)
	opts = append(opts,
		kgo.ConsumerGroup(e.cfg.Group),
		kgo.ConsumeTopics(e.cfg.Topics.Requests),
		kgo.TransactionalID(e.cfg.TransactionalID),
		kgo.TransactionTimeout(e.cfg.TransactionTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A marketplace that publishes in transactions leaves a commit
		// marker after its records. Kept, the marker moves the committed
		// offset past itself, to the last stable offset: otherwise an idle
		// instance's committed offset stays one below it, and the stall
		// watchdog takes the marker for a request waiting (checkStall).
		// Markers are never handed to process (runWindow).
		kgo.KeepControlRecords(),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxPartitionBytes(e.cfg.FetchMaxPartitionBytes),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerBatchMaxBytesFn(e.producerLimit),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { e.setOwned(m, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			e.revoked.Store(true)
			e.setOwned(m, false)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			e.revoked.Store(true)
			e.setOwned(m, false)
		}),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("ingest: kafka client: %w", err)
	}
	e.sess = sess
	e.sessions++
	if e.onSession != nil {
		e.onSession(e.sessions, sess.Client())
	}
	defer func() {
		e.ready.Store(false)
		sess.Close()
	}()
	if err := e.readLimits(ctx); err != nil {
		return err
	}

	activeKeys := 0
	lastReport := time.Now()
	wd := watchdog{seen: e.seen, since: time.Now()}
	for ctx.Err() == nil {
		if time.Since(lastReport) >= 30*time.Second {
			e.cfg.Logger.Info("ingest progress", "assigned_partitions", e.assigned(), "requests_committed", e.committed.Load(), "window", e.window(ctx, activeKeys))
			lastReport = time.Now()
		}
		window := e.window(ctx, activeKeys)
		e.m.window.Set(window.Seconds())
		keys, err := e.runWindow(ctx, window)
		if err != nil {
			return err
		}
		activeKeys = keys
		if err := e.checkStall(ctx, &wd); err != nil {
			return err
		}
	}
	return nil
}

// readLimits reads the output topics' max.message.bytes and sets the
// session's batch byte cap: MaxBatchBytes, lowered below the batches
// topic's limit. It runs before anything is produced, so the producer's
// per-topic caps (producerLimit, read when a partition is first used) see
// the limits too. When the brokers do not answer (no DescribeConfigs
// permission), it keeps the configured caps and says so: a topic set below
// them is then found by the records it refuses (errTooLarge, learnLimits).
func (e *Engine) readLimits(ctx context.Context) error {
	topics := []string{e.cfg.Topics.Batches, e.cfg.Topics.Status, e.cfg.Topics.RequestsDLQ}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rcs, err := kadm.NewClient(e.sess.Client()).DescribeTopicConfigs(lctx, topics...)
	limits := map[string]int32{}
	if err != nil {
		e.cfg.Logger.Warn("ingest: cannot read the topics' max.message.bytes; assuming they allow BATCH_MAX_BYTES", "err", err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			e.cfg.Logger.Warn("ingest: cannot read a topic's max.message.bytes", "topic", rc.Name, "err", rc.Err)
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, err := strconv.ParseInt(*c.Value, 10, 32); err == nil && n > 0 {
				limits[rc.Name] = int32(n)
			}
		}
	}
	e.learnedMu.Lock()
	for t, l := range e.learned {
		if d, ok := limits[t]; !ok || l < d {
			e.cfg.Logger.Warn("ingest: using a limit learned from a record the topic refused", "topic", t, "max_message_bytes", l)
			limits[t] = l
		}
	}
	e.learnedMu.Unlock()
	e.limits.Store(&limits)
	batchCap := min(e.cfg.MaxBatchBytes, int(e.producerLimit(e.cfg.Topics.Batches))-RecordOverhead)
	if batchCap < MinBatchBytes {
		return fmt.Errorf("ingest: topic %s has max.message.bytes=%d, too small for batches (at least %d needed, %d recommended): raise it",
			e.cfg.Topics.Batches, limits[e.cfg.Topics.Batches], MinBatchBytes+RecordOverhead, e.cfg.MaxBatchBytes+RecordOverhead)
	}
	if batchCap < e.cfg.MaxBatchBytes {
		e.cfg.Logger.Warn("ingest: batches capped below BATCH_MAX_BYTES by the batches topic's max.message.bytes",
			"topic", e.cfg.Topics.Batches, "max_message_bytes", limits[e.cfg.Topics.Batches], "batch_max_bytes", batchCap)
	}
	e.agg.maxBytes = batchCap
	return nil
}

// noteRefused adds r, refused by the brokers as too large this window, to
// its partition's refused bytes: the brokers refuse a partition's records
// sent together as one, so a partition's sum approximates the group that
// was too large, and a small record says nothing of the limit alone.
// learnLimits turns them into limits when the window has aborted.
func (e *Engine) noteRefused(r *kgo.Record) {
	size := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value)
	}
	e.learnedMu.Lock()
	defer e.learnedMu.Unlock()
	if e.refused == nil {
		e.refused = map[string]map[int32]int{}
	}
	if e.refused[r.Topic] == nil {
		e.refused[r.Topic] = map[int32]int{}
	}
	e.refused[r.Topic][r.Partition] += size
}

// learnLimits lowers the limit assumed for each topic that refused records
// this window: to half the largest refused group (or half the current
// limit, if lower), never below the topic's floor (franz-go's 512 bytes;
// for the batches topic, the smallest batch allowed, MinBatchBytes). The
// next session sends below it: the producer's record-batch cap, and the
// caps of batches, dead letters and REJECTED events derive from it. A
// refusal at the batches topic's floor puts its limit below it, so that
// readLimits stops the worker with its error. Without learning, a limit
// the brokers will not describe (no DescribeConfigs permission) made every
// window build the same records and abort on them, for ever.
func (e *Engine) learnLimits() {
	e.learnedMu.Lock()
	defer e.learnedMu.Unlock()
	for topic, parts := range e.refused {
		group := 0
		for _, n := range parts {
			group = max(group, n)
		}
		floor := 512 // franz-go's floor
		if topic == e.cfg.Topics.Batches {
			floor = MinBatchBytes + RecordOverhead
		}
		cur := int(e.producerLimit(topic))
		guess := max(floor, min(cur, group)/2)
		if cur <= floor {
			guess = floor - 1
			e.cfg.Logger.Error("ingest: a topic refused records at the smallest size ingest sends; raise its max.message.bytes", "topic", topic)
		}
		if e.learned == nil {
			e.learned = map[string]int32{}
		}
		if l, ok := e.learned[topic]; !ok || int32(guess) < l {
			e.learned[topic] = int32(guess)
		}
	}
	clear(e.refused)
}

// producerLimit is the producer's record-batch cap for topic:
// ProducerMaxBytes, or the topic's max.message.bytes when lower.
func (e *Engine) producerLimit(topic string) int32 {
	n := int32(ProducerMaxBytes)
	if m := e.limits.Load(); m != nil {
		if l, ok := (*m)[topic]; ok && l < n {
			n = max(l, 512) // franz-go's floor
		}
	}
	return n
}

// watchdog follows a session's progress for checkStall.
type watchdog struct {
	seen  int64     // e.seen when progress was last seen
	since time.Time // when progress was last seen, or the last idle check
}

// checkStall returns errStalled when the session has consumed nothing for
// StallTimeout while partitions it owns hold requests past the group's
// committed offsets. An idle instance (nothing waiting) is not stalled.
// The check costs two admin requests, made only once StallTimeout has
// passed without progress.
func (e *Engine) checkStall(ctx context.Context, wd *watchdog) error {
	now := time.Now()
	if e.seen != wd.seen {
		wd.seen, wd.since = e.seen, now
		return nil
	}
	if now.Sub(wd.since) < e.cfg.StallTimeout {
		return nil
	}
	wd.since = now
	waiting, seen, err := e.waiting(ctx)
	if err != nil {
		e.cfg.Logger.Warn("ingest: stall check failed", "err", err)
		return nil
	}
	if len(waiting) == 0 {
		e.cfg.Logger.Info("ingest: no request consumed, none waiting", "for", e.cfg.StallTimeout.String(), "offsets", seen)
		return nil
	}
	e.cfg.Logger.Error("ingest: stalled: owned partitions hold requests, none consumed; restarting the Kafka session",
		"for", e.cfg.StallTimeout.String(), "waiting", waiting, "offsets", seen)
	return errStalled
}

// waiting returns, for each owned partition of the requests topic whose
// committed offset (or log start, with none) is below its last stable
// offset, the number of requests waiting; and, for the log, each owned
// partition's "committed/stable/high" offsets.
func (e *Engine) waiting(ctx context.Context) (map[int32]int64, map[int32]string, error) {
	e.mu.Lock()
	owned := make([]int32, 0, len(e.owned))
	for p := range e.owned {
		owned = append(owned, p)
	}
	e.mu.Unlock()
	if len(owned) == 0 {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.sess.Client())
	topic := e.cfg.Topics.Requests
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	highs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	committed, err := adm.FetchOffsets(ctx, e.cfg.Group)
	if err != nil {
		return nil, nil, err
	}
	out := map[int32]int64{}
	seen := map[int32]string{}
	for _, p := range owned {
		end, ok := ends.Lookup(topic, p)
		if !ok || end.Err != nil {
			continue
		}
		pos := int64(-1)
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil {
			pos = c.At
		}
		if pos < 0 {
			if s, ok := starts.Lookup(topic, p); ok && s.Err == nil {
				pos = s.Offset
			}
		}
		if pos >= 0 && end.Offset > pos {
			out[p] = end.Offset - pos
		}
		high := int64(-1)
		if h, ok := highs.Lookup(topic, p); ok && h.Err == nil {
			high = h.Offset
		}
		seen[p] = fmt.Sprintf("%d/%d/%d", pos, end.Offset, high)
	}
	return out, seen, nil
}

// window computes the next window from the budget share.
func (e *Engine) window(ctx context.Context, activeKeys int) time.Duration {
	e.mu.Lock()
	assigned, total := len(e.owned), e.partTotal
	e.mu.Unlock()
	if total == 0 && assigned > 0 {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		td, err := kadm.NewClient(e.sess.Client()).ListTopics(lctx, e.cfg.Topics.Requests)
		cancel()
		if err == nil {
			if t, ok := td[e.cfg.Topics.Requests]; ok && t.Err == nil {
				total = len(t.Partitions)
				e.mu.Lock()
				e.partTotal = total
				e.mu.Unlock()
			}
		}
	}
	return Window(e.cfg.MaxWait, e.cfg.MaxWindow, activeKeys, e.cfg.DailyBatchBudget, assigned, total)
}

// runWindow runs one transaction: poll and batch until the window ends,
// then flush and commit. It returns the number of groups that were open at
// the end of the window.
func (e *Engine) runWindow(ctx context.Context, window time.Duration) (int, error) {
	// Every promise of an earlier window must have run first: the slab and
	// the record arena are reused below, and a late failure would be taken
	// for this window's. After a window that ended in an error, the closed
	// session fails its buffered records, and their promises may run after
	// Close returned (franz-go finishes them on a goroutine of its own).
	e.pending.Wait()
	if err := e.sess.Begin(); err != nil {
		return 0, fmt.Errorf("ingest: begin transaction: %w", err)
	}
	e.revoked.Store(false)
	e.produceErr.Store(nil)
	e.tooLarge.Store(false)
	e.slab.reset()
	e.recs.reset()
	e.windowReqs = 0
	// Windows run on the wall clock; Now (injectable) dates the records and
	// decides the Bogota day of validation.
	deadline := time.Now().Add(window)
	closeReason := CloseWindow
	transient := false

	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fetches := e.sess.PollRecords(pctx, e.cfg.MaxPollRecords)
		cancel()
		if fetches.IsClientClosed() {
			return 0, errors.New("ingest: kafka client closed")
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				e.cfg.Logger.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		e.ready.Store(true)
		e.polled = e.polled[:0]
		fetches.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() { // a transaction's marker: no request
				e.polled = append(e.polled, r)
			}
		})
		if len(e.polled) > 0 && !e.handle(ctx, e.polled, e.cfg.Now()) {
			transient = true
		}
		clear(e.polled) // let the records go
		switch {
		case transient:
			closeReason = ClosePressure
		case ctx.Err() != nil:
			closeReason = CloseShutdown
		case e.agg.pending+e.slab.size >= e.cfg.MaxPendingBytes:
			closeReason = ClosePressure
		case e.revoked.Load() || e.produceErr.Load() != nil:
		case time.Now().Before(deadline):
			continue
		}
		break
	}

	activeKeys := len(e.agg.open)
	now := e.cfg.Now()
	for _, ob := range e.agg.drain() {
		e.emit(ob, now, closeReason)
	}

	// Ending must not be cut short by shutdown: it is one request.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.TransactionTimeout)
	defer cancel()
	commit := kgo.TryCommit
	if transient || e.produceErr.Load() != nil {
		commit = kgo.TryAbort
	} else {
		// Commit only once every record of the window is known to be
		// written: End flushes too, but reports no record's failure, so a
		// commit chosen before would move the offsets past requests whose
		// batch record was refused (BATCHED events, no batch: never paid).
		if err := e.sess.Client().Flush(ectx); err != nil {
			e.m.txns.WithLabelValues("error").Inc()
			return 0, fmt.Errorf("ingest: flush before commit: %w", err)
		}
		e.pending.Wait()
		if e.produceErr.Load() != nil {
			commit = kgo.TryAbort
		}
	}
	committed, err := e.sess.End(ectx, commit)
	if err != nil {
		// Not waiting for this window's promises here: End ran out of time
		// with records still at the broker, and only closing the session
		// (Run, on this error) fails them. The next window waits for them.
		e.m.txns.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("ingest: end transaction: %w", err)
	}
	e.pending.Wait()
	e.agg.reset()
	if !committed && commit == kgo.TryCommit {
		// End also reports false for a commit whose outcome it could not
		// confirm (EndTxn answered UNKNOWN_SERVER_ERROR): franz-go then
		// rewinds to the offsets its client last knew committed, the
		// window's start. Read again in this session, a window the
		// brokers did commit would be batched a second time (each record
		// finds its own claim in the seen index).
		if landed, err := e.commitLanded(ectx); landed || err != nil {
			e.m.txns.WithLabelValues("error").Inc()
			e.cfg.Logger.Error("ingest: a window reported aborted may have been committed; the session is replaced so that nothing committed is read again",
				"committed_offsets_moved", landed, "err", err)
			return 0, errUnconfirmedCommit
		}
	}
	if committed {
		e.m.txns.WithLabelValues("committed").Inc()
		e.m.commit()
		e.committed.Add(e.windowReqs)
		e.failures = 0
		return activeKeys, nil
	}
	e.m.txns.WithLabelValues("aborted").Inc()
	e.m.discard()
	perr := e.produceErr.Load()
	if perr == nil && !transient {
		e.cfg.Logger.Info("transaction aborted (rebalance); the window is re-read")
		return activeKeys, nil
	}
	// A dependency is down, or a record was refused: back off (0.5 s,
	// doubling to 30 s) before the window is re-read, never spin.
	e.failures++
	backoff := min(500*time.Millisecond<<min(e.failures-1, 6), 30*time.Second)
	if perr != nil {
		e.m.produceErrors.Inc()
		e.cfg.Logger.Error("transaction aborted after a produce error; the window is re-read", "err", *perr, "backoff", backoff.String())
	} else {
		e.cfg.Logger.Warn("transaction aborted after a transient error; the window is re-read", "backoff", backoff.String())
	}
	select {
	case <-ctx.Done():
	case <-time.After(backoff):
	}
	if e.tooLarge.Load() && ctx.Err() == nil {
		e.learnLimits()
		return 0, errTooLarge
	}
	return activeKeys, nil
}

// commitLanded reports whether the group's committed offsets, as the
// brokers hold them once no transaction is pending on them, are past the
// client's own record of them for a partition of the requests topic this
// instance owns: the window End reported aborted was committed after all.
// An error means it could not be told.
func (e *Engine) commitLanded(ctx context.Context) (bool, error) {
	topic := e.cfg.Topics.Requests
	cached := e.sess.Client().CommittedOffsets()[topic]
	e.mu.Lock()
	owned := make([]int32, 0, len(e.owned))
	for p := range e.owned {
		owned = append(owned, p)
	}
	e.mu.Unlock()
	if len(owned) == 0 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.sess.Client())
	var resps kadm.OffsetResponses
	for {
		var err error
		if resps, err = adm.FetchOffsets(kadm.RequireStable(ctx), e.cfg.Group); err != nil {
			return false, err
		}
		// RequireStable does not block in kadm: a partition whose
		// offsets a transaction still holds pending answers
		// UNSTABLE_OFFSET_COMMIT, as it does for a moment after every
		// abort that followed a TxnOffsetCommit (the broker writes the
		// markers after answering EndTxn). Asked again until stable.
		unstable := false
		for _, p := range owned {
			if r, ok := resps.Lookup(topic, p); ok && errors.Is(r.Err, kerr.UnstableOffsetCommit) {
				unstable = true
			}
		}
		if !unstable {
			break
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("ingest: committed offsets still unstable: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, p := range owned {
		r, ok := resps.Lookup(topic, p)
		if !ok {
			continue
		}
		if r.Err != nil {
			return false, r.Err
		}
		prev := int64(-1) // none committed
		if c, ok := cached[p]; ok {
			prev = c.Offset
		}
		if r.At > prev {
			return true, nil
		}
	}
	return false, nil
}

// railName returns a shared pointer to the rail's name (a batch's Rail).
func railName(n rail.Name) *string {
	s, ok := railNames[n]
	if !ok {
		v := string(n)
		s = &v
	}
	return s
}

var railNames = func() map[rail.Name]*string {
	m := map[rail.Name]*string{}
	for _, n := range rail.Names {
		v := string(n)
		m[n] = &v
	}
	return m
}()

// errDuplicateRequest is the error header of a copy's DLQ record: exactly
// the reason code.
var errDuplicateRequest = errors.New(string(payout.ReasonDuplicateRequest))

// handle processes one poll's records: it decodes them, claims their
// requestIds in the seen index in one round trip, then processes each in
// order. It returns false when the window must abort and re-read them
// later: a transient decode failure, or the seen index failed (then none of
// the poll's records is processed: nothing is batched or rejected without
// the check).
func (e *Engine) handle(ctx context.Context, recs []*kgo.Record, now time.Time) bool {
	e.seen += int64(len(recs))
	n := len(recs)
	if cap(e.decoded) < n {
		e.decoded = make([]payout.Request, n)
		e.decErrs = make([]error, n)
		e.ids = make([]string, n)
		e.values = make([]string, n)
		e.copies = make([]bool, n)
		e.valEnds = make([]int, n)
	}
	e.valBuf = e.valBuf[:0]
	for i, r := range recs {
		err := e.cfg.Codec.DecodeRequestWithoutMetadata(r.Value, &e.decoded[i])
		e.decErrs[i], e.ids[i] = err, ""
		switch {
		case err == nil:
			e.ids[i] = e.decoded[i].RequestID
		case !events.Permanent(err):
			n = i + 1 // processed last: it aborts the window
		case payout.ValidReference(string(r.Key)):
			// Undecodable, but its key names a requestId: it gets a
			// REJECTED under that id, so it claims the id too.
			e.ids[i] = string(r.Key)
		}
		ts := int64(-1)
		if e.cfg.SeenTimestamps {
			ts = max(r.Timestamp.UnixMilli(), 0)
		}
		e.valBuf = appendSeenValue(e.valBuf, r.Partition, r.Offset, ts)
		e.valEnds[i] = len(e.valBuf)
		if n == i+1 {
			break
		}
	}
	// The values share one string: one allocation per poll, not one per
	// record.
	all, start := string(e.valBuf), 0
	for i := range n {
		e.values[i], start = all[start:e.valEnds[i]], e.valEnds[i]
	}
	if err := e.index.claim(ctx, e.ids[:n], e.values[:n], e.copies[:n]); err != nil {
		e.m.seenErrors.Inc()
		e.cfg.Logger.Error("ingest: cannot check requests against the seen index in Redis (REDIS_URL); the window is aborted and re-read: nothing is batched or rejected until the check succeeds",
			"err", err, "records", n)
		return false
	}
	if e.afterClaim != nil {
		if err := e.afterClaim(); err != nil {
			e.cfg.Logger.Warn("ingest: aborting the window after its claims", "err", err)
			return false
		}
	}
	for i := range n {
		if !e.process(recs[i], &e.decoded[i], e.decErrs[i], e.copies[i], now) {
			return false
		}
	}
	return true
}

// process handles one request record: req and decErr are its decoding,
// isCopy whether another record holds its requestId in the seen index. It
// returns false when the record could not be handled for a transient
// reason, so the window must abort and re-read it later.
func (e *Engine) process(r *kgo.Record, req *payout.Request, decErr error, isCopy bool, now time.Time) bool {
	e.windowReqs++
	if decErr != nil {
		if !events.Permanent(decErr) {
			e.cfg.Logger.Warn("transient decode failure; aborting the window", "err", decErr)
			return false
		}
		if isCopy {
			// Another record holds its key's requestId: whatever these
			// bytes are, they are marked a copy, which payoutsctl never
			// replays while they decode to that requestId (a replay past
			// DEDUPE_WINDOW, once the status topic's history of the
			// original has aged out, would pay it again); bytes that
			// decode to another requestId were judged on the key alone
			// (a producer keying by seller), and its other rules decide.
			decErr = fmt.Errorf("%w: %w", errDuplicateRequest, decErr)
		}
		e.produce(e.dlqRecord(r, decErr))
		e.m.pend("dlq")
		// The key of a request is its requestId: when it is one, the
		// marketplace also hears that the request ended, unless another
		// record holds that requestId (its lifecycle is the request's).
		if id := string(r.Key); payout.ValidReference(id) && !isCopy {
			code := ReasonUndecodable
			if errors.Is(decErr, events.ErrUnknownSchema) {
				code = ReasonSchemaNotFound
			}
			e.reject(r, id, 0, "", code, "the request could not be decoded; its bytes are in the dead-letter topic", now)
			e.m.rejectedReason(string(code))
		}
		return true
	}
	if isCopy {
		e.produce(e.dlqRecord(r, errDuplicateRequest))
		e.m.pend("duplicate")
		return true
	}
	// The rail: the request's own, or its currency's route.
	name, ok := e.cfg.Routes.Choose(req)
	if !ok || !rail.Available[name] {
		code, msg := rail.ReasonUnknownRail, "the request's rail is not one of wompi, smartfastpay, wepayout, and RAIL_ROUTES has no route for its currency"
		if ok {
			code, msg = rail.ReasonRailNotAvailable, "this release does not pay through rail "+string(name)
		}
		e.reject(r, req.RequestID, req.AmountInCents, req.OriginAccountID, code, msg, now)
		e.m.pend("rejected")
		e.m.rejectedReason(string(code))
		return true
	}
	req.Rail = railName(name)
	if vs := validateFor(name, req, now); vs != nil {
		e.reject(r, req.RequestID, req.AmountInCents, req.OriginAccountID, vs.Reason(), vs.Message(), now)
		e.m.pend("rejected")
		e.m.rejectedReason(string(vs.Reason()))
		return true
	}
	closed, reason, fits := e.agg.add(req, r.Partition, r.Offset, len(r.Value))
	if closed != nil {
		e.emit(closed, now, reason)
	}
	if !fits {
		e.reject(r, req.RequestID, req.AmountInCents, req.OriginAccountID, ReasonRequestTooLarge,
			fmt.Sprintf("the request does not fit alone in a batch record of %d bytes", e.agg.maxBytes), now)
		e.m.pend("rejected")
		e.m.rejectedReason(string(ReasonRequestTooLarge))
		return true
	}
	e.m.pend("batched")
	return true
}

// reject produces a REJECTED status event for the request of record r. An
// event too large for the status topic (it repeats the request's
// requestId and originAccountId, which may be invalid and up to 256 KiB
// each) would be refused on every re-read of the window: the request is
// dead-lettered instead, with the reason in its error header.
func (e *Engine) reject(r *kgo.Record, requestID string, amount int64, origin string, reason payout.Reason, msg string, now time.Time) {
	code := string(reason)
	sc := payout.StatusChange{
		// Content-derived: a republished copy of the same rejected request
		// gets the same eventId, so consumers see one rejection.
		EventID:         payout.EventID("status", requestID, string(payout.StatusRejected), code),
		RequestID:       requestID,
		Status:          payout.StatusRejected,
		ReasonCode:      &code,
		ReasonMessage:   &msg,
		AmountInCents:   amount,
		OriginAccountID: origin,
		OccurredAt:      now,
		Source:          payout.SourceIngest,
	}
	// Its key and its value both carry requestID; the rest of the value
	// (eventId, status, source, times, amount) is under 256 bytes.
	limit := min(MaxRejectedBytes, int(e.producerLimit(e.cfg.Topics.Status))-RecordOverhead)
	if size := 2*len(requestID) + len(origin) + len(msg) + len(code) + 256; size > limit {
		e.produce(e.dlqRecord(r, fmt.Errorf("%s: %s; its REJECTED event (about %d bytes) is above the status topic's limit of %d, so the request is dead-lettered instead",
			code, msg, size, limit)))
		e.cfg.Logger.Warn("ingest: a REJECTED event too large for the status topic; the request is dead-lettered instead",
			"reason", code, "bytes", size, "limit", limit, "partition", r.Partition, "offset", r.Offset)
		return
	}
	e.produceStatus(&sc)
}

// dlqRecord returns the DLQ record for r. A value too large for the DLQ
// topic (its max.message.bytes below the requests topic's) is left out,
// then, if the record still does not fit, the source's own headers, then
// its key; the error header says what was left out: the record still ends
// visibly, and the bytes stay in the requests topic until its retention.
func (e *Engine) dlqRecord(r *kgo.Record, err error) *kgo.Record {
	d := events.DLQRecord(r, e.cfg.Topics.RequestsDLQ, err)
	limit := int(e.producerLimit(d.Topic)) - RecordOverhead
	if dlqSize(d) <= limit {
		return d
	}
	// Left out, in this order, until the record fits: the value, the
	// source's own headers, the key. The key and the headers alone may pass
	// the limit too (bad input: a record is refused whole, and one that is
	// refused on every re-read of its window would stall the partition for
	// ever); the source-* headers still name the record, which stays in
	// the requests topic until its retention.
	src := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Headers: r.Headers}
	left := fmt.Sprintf("value of %d bytes", len(r.Value))
	fits := func() bool {
		d = events.DLQRecord(src, e.cfg.Topics.RequestsDLQ,
			fmt.Errorf("%w (%s left out: above the DLQ topic's limit of %d)", err, left, limit))
		return dlqSize(d) <= limit
	}
	if fits() {
		return d
	}
	if len(src.Headers) > 0 {
		left += fmt.Sprintf(", %d source headers", len(src.Headers))
		src.Headers = nil
		if fits() {
			return d
		}
	}
	left += fmt.Sprintf(", key of %d bytes", len(src.Key))
	src.Key = nil
	fits()
	return d
}

// dlqSize bounds what a DLQ record takes of its topic's limit, less
// RecordOverhead.
func dlqSize(d *kgo.Record) int {
	size := len(d.Key) + len(d.Value)
	for _, h := range d.Headers {
		size += len(h.Key) + len(h.Value) + 10
	}
	return size
}

// emit produces a closed batch and one BATCHED event per request, then
// recycles the batch.
func (e *Engine) emit(ob *openBatch, now time.Time, reason CloseReason) {
	// A batch value is large and of its own size: its own buffer, not the
	// slab's chunks, of the aggregator's bound of the encoding (exact for
	// the transactions, events.BatchOverhead for the rest).
	size := ob.size
	b := e.agg.seal(ob, now)
	value, err := e.cfg.Codec.AppendBatch(make([]byte, 0, size), b)
	if err != nil {
		e.fail(fmt.Errorf("encode batch: %w", err))
		e.agg.recycle(ob)
		return
	}
	e.slab.size += len(value)
	e.produce(&kgo.Record{Topic: e.cfg.Topics.Batches, Key: []byte(b.BatchID), Value: value})
	batchID := b.BatchID
	for i := range b.Transactions {
		tx := &b.Transactions[i]
		sc := payout.StatusChange{
			// Not the batch: a copy batched in another window gets the
			// same eventId, so consumers that dedupe by eventId see one
			// BATCHED per request (the dispatcher pays one copy only).
			EventID:         e.eventIDs.EventID("status", tx.RequestID, string(payout.StatusBatched)),
			RequestID:       tx.RequestID,
			BatchID:         &batchID,
			Status:          payout.StatusBatched,
			AmountInCents:   tx.AmountInCents,
			OriginAccountID: b.OriginAccountID,
			OccurredAt:      now,
			Source:          payout.SourceIngest,
			Rail:            b.Rail,
		}
		e.produceStatus(&sc)
	}
	e.m.batch(reason, len(b.Transactions))
	e.agg.recycle(ob)
}

func (e *Engine) produceStatus(sc *payout.StatusChange) {
	buf := e.slab.room(1024)
	start := len(buf)
	buf, err := e.cfg.Codec.AppendStatusChange(buf, sc)
	if err != nil {
		e.fail(fmt.Errorf("encode status: %w", err))
		return
	}
	value := e.slab.took(buf, start)
	key := e.slab.copy(sc.RequestID)
	r := e.recs.next()
	*r = kgo.Record{Topic: e.cfg.Topics.Status, Key: key, Value: value}
	e.produce(r)
}

func (e *Engine) produce(r *kgo.Record) {
	e.pending.Add(1)
	e.sess.Produce(context.Background(), r, e.promise)
}

// produced is every record's promise.
func (e *Engine) produced(r *kgo.Record, err error) {
	if err != nil {
		if errors.Is(err, kerr.MessageTooLarge) {
			e.tooLarge.Store(true)
			e.noteRefused(r)
		}
		e.fail(fmt.Errorf("produce to %s: %w", r.Topic, err))
	}
	e.pending.Done()
}

func (e *Engine) fail(err error) { e.produceErr.CompareAndSwap(nil, &err) }

// recordChunk is the number of records in one chunk of a recordArena.
const recordChunk = 4096

// keptChunks is how many chunks the slab and the record arena keep from one
// window to the next: a steady window's worth (4 MiB of values, 16,384
// records), not a burst's.
const keptChunks = 4

// recordArena hands out one window's records from chunks that never move
// (a record's address is held by the producer until its promise runs);
// chunks are reused window after window.
type recordArena struct {
	chunks [][]kgo.Record
	cur    int // chunks[cur] is being handed out
	n      int // records handed out of chunks[cur]
}

// reset makes the arena's records free for the next window, and lets the
// collector have the chunks past the first keptChunks: a window of a burst
// may need many, and the live heap they would pin shrinks a memory limit's
// headroom for every later collection.
func (a *recordArena) reset() {
	clear(a.chunks[min(len(a.chunks), keptChunks):])
	a.chunks = a.chunks[:min(len(a.chunks), keptChunks)]
	a.cur, a.n = 0, 0
}

// next returns a record of the arena, its fields as the last window left
// them: the caller sets every one.
func (a *recordArena) next() *kgo.Record {
	if a.cur < len(a.chunks) && a.n == len(a.chunks[a.cur]) {
		a.cur, a.n = a.cur+1, 0
	}
	if a.cur == len(a.chunks) {
		a.chunks = append(a.chunks, make([]kgo.Record, recordChunk))
	}
	a.n++
	return &a.chunks[a.cur][a.n-1]
}

// slabChunk is the size of one slab chunk.
const slabChunk = 1 << 20

// slab is an append-only arena for one window's encoded record values.
type slab struct {
	chunks [][]byte // chunks[cur] is being filled; the rest wait for reuse
	cur    int
	size   int // bytes handed out this window
}

// reset empties the slab for the next window, keeping its first keptChunks
// chunks (the others go to the collector, as the record arena's).
func (s *slab) reset() {
	clear(s.chunks[min(len(s.chunks), keptChunks):])
	s.chunks = s.chunks[:min(len(s.chunks), keptChunks)]
	for i := range s.chunks {
		s.chunks[i] = s.chunks[i][:0]
	}
	s.cur, s.size = 0, 0
}

// room returns the current chunk, first moving to a fresh one when fewer
// than n bytes are left in it. Append the value to it, then call took.
func (s *slab) room(n int) []byte {
	for s.cur < len(s.chunks) && cap(s.chunks[s.cur])-len(s.chunks[s.cur]) < n {
		if len(s.chunks[s.cur]) == 0 { // an empty chunk too small: replace it
			s.chunks[s.cur] = make([]byte, 0, max(slabChunk, n))
			break
		}
		s.cur++
	}
	if s.cur == len(s.chunks) {
		s.chunks = append(s.chunks, make([]byte, 0, max(slabChunk, n)))
	}
	return s.chunks[s.cur]
}

// copy returns a copy of str in the slab.
func (s *slab) copy(str string) []byte {
	buf := s.room(len(str))
	return s.took(append(buf, str...), len(buf))
}

// took records that buf (the chunk room returned, appended to) now holds a
// value from start, and returns that value. If the append outgrew the chunk,
// buf is a new array: it becomes the chunk, and the old one stays with the
// values already handed out from it.
func (s *slab) took(buf []byte, start int) []byte {
	s.size += len(buf) - start
	s.chunks[s.cur] = buf
	return buf[start:len(buf):len(buf)]
}
