package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// errCrashed is returned by Run after a test hook simulated a crash.
var errCrashed = errors.New("dispatch: simulated crash")

// MaxRecordBytes bounds a produced record (a deferred batch of
// events.MaxTransactions transactions); the deferred topic's
// max.message.bytes must allow what the batches topic allows.
const MaxRecordBytes = 32 << 20

// Engine is one dispatcher replica. Create it with New, run it once with
// Run. Replicas in the same group share the partitions; Redis and Wompi's
// idempotency keep any batch from being paid twice.
type Engine struct {
	// arenas holds the record arenas of batches whose events all finished,
	// for the next batches (takeArena, putArena): a Wompi batch's is about
	// a megabyte.
	arenasMu sync.Mutex
	arenas   []*recordArena

	cfg       Config
	log       *slog.Logger
	m         *metrics
	st        *store
	batchRail rail.BatchRail // Config.Wompi
	limiter   *ratelimit.RailLimiters
	bulk      map[rail.Name]*ratelimit.Bulk // the single-payout rails' API rate limits
	budget    *ratelimit.Budget
	handoff   *submitted.Store
	gate      *track.Gate    // SUBMITTED goes through the tracker's status compare-and-set
	reads     sync.WaitGroup // the rail's background reads (its bank table), bound by hard
	settling  sync.WaitGroup // produces given up unanswered, and the leases and status keys they hold (produceSync, job.holdLease)
	health    *healthGate
	rails     railconfig.Enabled // Config.Rails, Wompi always in
	cl        *kgo.Client

	limitsMu   sync.Mutex
	lists      map[rail.Name]*dayLister // listDay's, per single-payout rail
	acctLimits map[string]int64         // Wompi's per-account daily limit, when known

	ready    atomic.Bool
	assigned atomic.Int64
	mu       sync.Mutex
	workers  map[tp]*worker
	hard     context.Context // cancelled after the drain, or at a simulated crash
	killHard context.CancelCauseFunc
	killRun  context.CancelCauseFunc
	crashed  atomic.Bool
	jobSeq   atomic.Int64
	boot     string                   // random per process start: a restart never inherits a predecessor's lease owner id
	base     time.Time                // New's time, with its monotonic reading: since
	started  atomic.Pointer[startPos] // this process's start record, once written (starts.go)
	startMu  sync.Mutex               // one start record per process
	// startedTopic is the starts topic's id (hex) when this process's
	// start record was written ("" when the brokers gave none), set before
	// started: a topic made again since is another log (firstStart).
	startedTopic string
	mayEvict     atomic.Bool // Redis may evict our keys: no new-payee proof (checkEviction)
	// budgetApart: the daily budgets' keys may be lost while the epoch
	// survives (a Redis Cluster: the {budget} slot's master restarts empty
	// or fails over, the {dispatch} slot's does not), which no recovery
	// notices: a batch then checks its reservation before each POST
	// (followSingleDay, stillHeld). On one Redis, a loss of the budgets is
	// a loss of the epoch, and every other dispatch waits for a recovery
	// that lists the day after the last fenced POST could land.
	budgetApart bool
	hadEpoch    atomic.Bool // ensureEpoch has handed out an epoch: this process may have claimed
	// railsMissing: a recovery here found a rail it must list and cannot
	// (missingRails); the process leaves recoveries to other replicas.
	railsMissing  atomic.Bool
	railsEvery    time.Duration // railsRecordEvery (tests shorten it)
	prefixEvery   time.Duration // prefixCheckEvery (tests shorten it)
	announceRetry time.Duration // announceRetryEvery (tests shorten it)
	completing    atomic.Bool   // completeEpoch is running
	// completeAfter: completeEpoch failed; no new try before this
	// reading of since (ns).
	completeAfter atomic.Int64
	completeFails atomic.Int64 // completeEpoch's failed tries
	closed        sync.Once
	// produceTimeout is produceTimeout (tests shorten it).
	produceTimeout time.Duration
	// scanSkew is refusalScanSkew (tests set it to 0).
	scanSkew time.Duration
	// silentLimit is silentBrokersLimit (tests shorten it).
	silentLimit time.Duration
	// refusalLimit is Config.RefusalLookLimit (tests shorten it).
	refusalLimit time.Duration
	// looks holds, per partition of the batch being worked, how far its
	// last look for an earlier refusal read before it ran out of time
	// (lookProgress): the batch's retry in place resumes there.
	looksMu sync.Mutex
	looks   map[tp]*lookProgress
	// silenced is set, once, when this replica closed its own client
	// because the brokers left records unanswered too long (job.holdLease):
	// Run then returns it.
	silenced atomic.Pointer[error]

	// Test hooks (nil in production).
	afterPost       func(batchID string) error // after Wompi accepted the batch, before anything is recorded
	beforePost      func(batchID string)       // just before each POST attempt
	whileSending    func(batchID string)       // after the last check, as each POST goes out
	betweenProduces func()                     // produceGatedThen: after the first produce, before the second
	statusLooked    func(read int64)           // payeesRejectedOnTopic: the records its read went through
	lookVisit       func() error               // each record of a payee a look reads, before it is read: an error stops the look there
}

type tp struct {
	topic string
	part  int32
}

// New validates cfg and builds an engine (the Kafka client is created but
// does not connect until Run).
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, m: m, batchRail: cfg.Wompi, workers: map[tp]*worker{}, acctLimits: map[string]int64{}, boot: randomID()[:8], base: time.Now(), railsEvery: railsRecordEvery, prefixEvery: prefixCheckEvery, announceRetry: announceRetryEvery,
		produceTimeout: produceTimeout, silentLimit: silentBrokersLimit, scanSkew: refusalScanSkew, refusalLimit: cfg.RefusalLookLimit}
	_, e.budgetApart = cfg.Redis.(*redis.ClusterClient)
	e.st = &store{rdb: cfg.Redis, prefix: cfg.Prefix, owner: cfg.InstanceID, leaseMs: cfg.LeaseTTL.Milliseconds(),
		reqTTLms: cfg.DedupeWindow.Milliseconds(), recTTLms: cfg.RecordTTL.Milliseconds(),
		lockTTLms: max(cfg.LeaseTTL, 3*time.Second).Milliseconds()}
	// One API rate limit per rail; Wompi's bucket keeps its key from before
	// rails. The other rails get theirs when the dispatcher pays through them.
	if e.limiter, err = ratelimit.NewRailLimiters(cfg.Redis, cfg.Prefix,
		map[rail.Name]ratelimit.RailRate{rail.Wompi: {PerSecond: cfg.RatePerSecond, Burst: cfg.RateBurst}}); err != nil {
		return nil, err
	}
	// Each single-payout rail's API calls (lookups and POSTs) draw from a
	// bucket of their own, reserved a batch at a time.
	e.bulk = map[rail.Name]*ratelimit.Bulk{}
	e.lists = map[rail.Name]*dayLister{}
	for n := range cfg.Singles {
		e.lists[n] = &dayLister{}
		rate := ratelimit.RailRate{PerSecond: cfg.SingleRatePerSecond, Burst: cfg.SingleRateBurst}
		if r, ok := cfg.SingleRates[n]; ok {
			rate = r
		}
		if e.bulk[n], err = ratelimit.NewBulk(cfg.Redis, cfg.Prefix+string(n)+"-calls", rate.PerSecond, rate.Burst); err != nil {
			return nil, fmt.Errorf("dispatch: rate limit of rail %s: %w", n, err)
		}
	}
	if e.budget, err = ratelimit.NewBudget(cfg.Redis, ratelimit.BudgetConfig{Prefix: cfg.Prefix, DailyBatchCap: cfg.DailyBatchCap,
		AccountDailyLimit: e.accountLimit}); err != nil {
		return nil, err
	}
	e.handoff = submitted.New(cfg.Redis, cfg.Prefix, 0)
	// The gate's lease outlasts one produce (60 s), so a webhook never
	// slips a later status in front of an in-flight SUBMITTED.
	e.gate = track.NewGate(cfg.Redis, cfg.Prefix, 70*time.Second)
	if cfg.StatusLossGrace != 0 {
		e.gate.SetLossGrace(cfg.StatusLossGrace)
	}
	e.gate.SetKeyByKey(cfg.StatusKeyByKey)
	e.gate.LeaseLost = func(held, want int, err error) {
		e.m.leasesLost.Add(float64(want - held))
		e.log.Warn("dispatch: status lease not kept while SUBMITTED was pending", "held", held, "want", want, "err", err)
	}
	e.rails = railconfig.Enabled{rail.Wompi: true}
	for n, on := range cfg.Rails {
		e.rails[n] = e.rails[n] || on
	}
	for n := range cfg.Singles {
		e.rails[n] = true
	}
	e.health = &healthGate{e: e}
	e.hard, e.killHard = context.WithCancelCause(context.Background())

	opts := append([]kgo.Opt{}, cfg.Kafka...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Batches, cfg.Topics.BatchesDeferred),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// ingest writes batches in Kafka transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Each transaction leaves a commit marker after its batches. Kept,
		// a marker the worker reaches with nothing behind it is committed
		// (worker.run): otherwise an idle group's committed offset stays
		// one below the end, and its lag (payouts_consumer_group_lag)
		// reads 1 per partition for ever.
		kgo.KeepControlRecords(),
		// Workers pause their partition while its queue is full. A resumed
		// partition joins the next fetch request only: with the default 5 s
		// long poll on the partitions that have nothing new (the deferred
		// topic, mostly), workers would idle for seconds with batches
		// waiting in Kafka.
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(MaxRecordBytes),
		kgo.RecordPartitioner(waitPartitioner{Partitioner: kgo.UniformBytesPartitioner(64<<10, true, true, nil), deferred: cfg.Topics.BatchesDeferred}),
		kgo.OnPartitionsAssigned(e.onAssigned),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onRevoked),
		// A poll's records reach the workers of the assignment they were
		// fetched under: a revoke, or a lost session, waits until Run has
		// routed them (AllowRebalance). Else records fetched before a
		// lost session could go to the partition's next worker here,
		// which would commit them ahead of earlier records not yet done.
		kgo.BlockRebalanceOnPoll(),
	)
	if e.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("dispatch: kafka client: %w", err)
	}
	if err := track.CheckIdempotentProducer(e.cl); err != nil {
		e.cl.Close()
		return nil, fmt.Errorf("dispatch: kafka client: %w", err)
	}
	if cfg.ReadKafka == nil && events.HasHooks(e.cl) {
		// A second client built from these options would register the
		// kprom hook's collectors again, and panic.
		e.cl.Close()
		return nil, errors.New("dispatch: Kafka carries hooks (kprom): set ReadKafka to the same base options without them")
	}
	return e, nil
}

// fetchMaxWait bounds the broker's long poll of one fetch (see New).
const fetchMaxWait = 200 * time.Millisecond

// accountLimit is the daily money limit the budget enforces for an account:
// the lower of DailyLimitCents and what Wompi's GET /limits said.
func (e *Engine) accountLimit(acct string) int64 {
	e.limitsMu.Lock()
	defer e.limitsMu.Unlock()
	if v, ok := e.acctLimits[acct]; ok && v > 0 {
		return min(v, e.cfg.DailyLimitCents)
	}
	return e.cfg.DailyLimitCents
}

// tooFarAhead reports a NotBefore further ahead of now than any deferral
// sets: a clock stepped forward when it was set (or stepped back since),
// or a record written by hand. Waiting for it would stall the partition
// and every copy behind it, so the batch is looked at now: the claim,
// lookups and budget decide again, as for a redelivery.
func (e *Engine) tooFarAhead(notBefore time.Time, log *slog.Logger) bool {
	ahead := notBefore.Sub(e.now())
	if ahead <= e.maxDeferral() {
		return false
	}
	log.Error("dispatch: deferred batch due further ahead than any deferral sets (a clock stepped when it was deferred?): handled now",
		"not_before", notBefore.UTC(), "ahead", ahead.Round(time.Second), "bound", e.maxDeferral())
	e.m.notBeforeIgnored.Inc()
	return true
}

// maxDeferral bounds how far ahead of now a deferral sets a batch's
// NotBefore: the next business day's start (at most a day, plus an hour's
// margin for a zone's offset change), the balance retry, the lookup
// patience, the longest rail retry, railRetry, and RecoveryGrace (a copy
// waits that long after its last POST: postHorizon).
func (e *Engine) maxDeferral() time.Duration {
	return max(25*time.Hour, e.cfg.DeferBalanceRetry, e.cfg.LookupPatience, e.railRetryAfter(4), railRetry, e.cfg.RecoveryGrace) + time.Hour
}

// Ready reports whether the engine has joined its group and is consuming.
func (e *Engine) Ready() bool { return e.ready.Load() }

// Assigned returns how many partitions this replica owns now.
func (e *Engine) Assigned() int { return int(e.assigned.Load()) }

func (e *Engine) now() time.Time { return e.cfg.Now() }

// since is the time since New on the monotonic clock: durations between
// two of its readings do not move when the wall clock is stepped.
func (e *Engine) since() time.Duration { return time.Since(e.base) }

// Close releases the Kafka client of an engine that was never Run. Run
// closes it itself.
func (e *Engine) Close() {
	e.closed.Do(func() { e.cl.Close() })
	e.killHard(context.Canceled)
	e.reads.Wait()    // a GET /banks in flight ends with e.hard
	e.settling.Wait() // the closed client has failed their records
}

// Run consumes batches until ctx ends, then drains: each partition worker
// stops at its next safe point (an in-flight POST and what follows its
// success are finished and committed), and the replica leaves its group.
// It returns nil after a clean drain.
func (e *Engine) Run(ctx context.Context) error {
	defer e.Close()
	runCtx, killRun := context.WithCancelCause(ctx)
	defer killRun(nil)
	e.killRun = killRun

	// The status epoch marker, written now if missing: this process then
	// knows it, and a marker missing later is a loss (track.Gate.SetLossGrace).
	if _, err := e.gate.Epoch(runCtx); err != nil {
		e.log.Warn("dispatch: read the status epoch marker", "err", err)
	}
	e.checkRunID(runCtx)
	e.checkEviction(runCtx)
	// The start record, before anything can be claimed (starts.go).
	e.announceBeforeConsuming(runCtx)
	e.health.check(runCtx)
	var bg sync.WaitGroup
	bg.Go(func() { e.health.run(e.hard) })
	bg.Go(func() {
		t := time.NewTicker(evictionCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-e.hard.Done():
				return
			case <-t.C:
				e.checkEviction(e.hard)
			}
		}
	})
	bg.Go(func() { e.answerRecoveryWanted(e.hard) })
	if e.started.Load() != nil {
		bg.Go(func() { e.checkStartsTopic(e.hard) })
		bg.Go(func() { e.keepAnnouncing(e.hard) })
	}
	defer bg.Wait()
	defer e.killHard(context.Canceled)

	// "consuming" is logged by onAssigned, once the group has given this
	// replica partitions.
	e.log.Info("dispatch: joining the group", "topics", []string{e.cfg.Topics.Batches, e.cfg.Topics.BatchesDeferred},
		"group", e.cfg.Group, "instance", e.cfg.InstanceID)
	for {
		fetches := e.cl.PollRecords(runCtx, 1000)
		if fetches.IsClientClosed() || runCtx.Err() != nil {
			e.cl.AllowRebalance()
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				e.log.Warn("dispatch: fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			e.mu.Lock()
			w := e.workers[tp{p.Topic, p.Partition}]
			e.mu.Unlock()
			if w != nil { // else no longer ours: the next owner reads them again
				w.push(p.Records)
			}
		})
		// Routed: a revoke may now stop the workers they went to.
		e.cl.AllowRebalance()
		e.ready.Store(true)
	}
	e.ready.Store(false)
	e.stopWorkers(nil)
	if e.crashed.Load() {
		e.killHard(errCrashed)
		return errCrashed
	}
	e.closed.Do(func() { e.cl.Close() }) // leaves the group
	if err := e.silenced.Load(); err != nil {
		return *err
	}
	e.log.Info("dispatch: drained")
	return nil
}

// silentBrokersLimit is how long a replica keeps a batch for records given
// up unanswered (job.holdLease) before it closes its Kafka client: the
// close fails them, the batches move on one lease later, and Run returns
// errBrokersSilent so that the process is restarted.
const silentBrokersLimit = 2 * produceTimeout

// errBrokersSilent is Run's error when the replica closed its client
// because the brokers had not answered records for silentBrokersLimit.
var errBrokersSilent = errors.New("dispatch: the Kafka brokers left records unanswered for too long; the client was closed so that this replica restarts and its batches move on")

// silence closes the client (once) for errBrokersSilent.
func (e *Engine) silence() {
	err := errBrokersSilent
	if e.silenced.CompareAndSwap(nil, &err) {
		e.log.Error("dispatch: closing the Kafka client: records given up unanswered still hold their batches",
			"after", e.silentLimit)
		go e.closed.Do(func() { e.cl.Close() })
	}
}

// crash simulates a process crash for tests: no lease release, no commit.
func (e *Engine) crash() {
	e.crashed.Store(true)
	e.killHard(errCrashed)
	if e.killRun != nil {
		e.killRun(errCrashed)
	}
}

func (e *Engine) onAssigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	e.ready.Store(true)
	e.log.Info("dispatch: consuming", "group", e.cfg.Group, "instance", e.cfg.InstanceID, "assigned", m)
	e.mu.Lock()
	defer e.mu.Unlock()
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{topic, p}
			if _, ok := e.workers[k]; ok {
				continue
			}
			soft, cancel := context.WithCancel(e.hard)
			w := &worker{e: e, tp: k, soft: soft, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
			w.log = e.log.With("topic", topic, "partition", p)
			e.workers[k] = w
			e.assigned.Add(1)
			go w.run()
		}
	}
	// A new worker starts unpaused: clear any pause a previous owner of
	// the partition in this process left behind. (The callback's client:
	// e.cl may not be set yet on the first assignment.)
	cl.ResumeFetchPartitions(m)
}

func (e *Engine) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	e.stopWorkers(m)
}

// stopWorkers stops the workers of the given partitions (all when m is
// nil) and waits for them; their fetch pauses are lifted so a later
// assignment of the same partition fetches again.
func (e *Engine) stopWorkers(m map[string][]int32) {
	e.mu.Lock()
	var ws []*worker
	for k, w := range e.workers {
		if m != nil && !contains(m[k.topic], k.part) {
			continue
		}
		ws = append(ws, w)
		delete(e.workers, k)
		e.assigned.Add(-1)
	}
	e.mu.Unlock()
	resume := map[string][]int32{}
	for _, w := range ws {
		// Stopped under its lock: a push racing with the revoke (the poll
		// loop looked the worker up just before) can no longer pause the
		// partition after the resume below, which would leave it paused
		// for its next owner in this process.
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
		w.cancel()
		resume[w.tp.topic] = append(resume[w.tp.topic], w.tp.part)
	}
	for _, w := range ws {
		<-w.done
	}
	if len(resume) > 0 {
		e.cl.ResumeFetchPartitions(resume)
	}
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// worker handles one assigned partition: its records one at a time, in
// offset order, committing each one's offset once its outcome is durable.
type worker struct {
	e      *Engine
	tp     tp
	log    *slog.Logger
	soft   context.Context // ends when the partition is revoked or the engine drains
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu          sync.Mutex
	queue       []*kgo.Record
	pauseQueue  bool // too many fetched records waiting
	pauseNotDue bool // the head record is a deferred batch not yet due
	paused      bool
	stopped     bool // revoked or draining: never pause again
}

func (w *worker) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if len(w.queue) >= w.e.cfg.MaxQueued {
		w.pauseQueue = true
	}
	w.syncPauseLocked()
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// queued is the number of records waiting in the worker's queue.
func (w *worker) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *worker) pop() *kgo.Record {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			r := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if w.pauseQueue && len(w.queue) <= w.e.cfg.MaxQueued/2 {
				w.pauseQueue = false
				w.syncPauseLocked()
			}
			w.mu.Unlock()
			return r
		}
		w.mu.Unlock()
		select {
		case <-w.soft.Done():
			return nil
		case <-w.wake:
		}
	}
}

func (w *worker) setNotDue(v bool) {
	w.mu.Lock()
	w.pauseNotDue = v
	w.syncPauseLocked()
	w.mu.Unlock()
}

func (w *worker) syncPauseLocked() {
	if w.stopped {
		return
	}
	want := w.pauseQueue || w.pauseNotDue
	if want == w.paused {
		return
	}
	w.paused = want
	m := map[string][]int32{w.tp.topic: {w.tp.part}}
	if want {
		w.e.cl.PauseFetchPartitions(m)
	} else {
		w.e.cl.ResumeFetchPartitions(m)
	}
}

func (w *worker) run() {
	defer close(w.done)
	for {
		rec := w.pop()
		if rec == nil {
			return
		}
		if rec.Attrs.IsControl() {
			// A transaction's marker: nothing to pay. The commit of the
			// record behind it covers it; with none queued, it is
			// committed itself.
			if w.queued() == 0 && !w.commit(rec) {
				return
			}
			continue
		}
		if !w.handle(rec) {
			return
		}
	}
}

// handle works one record to a durable outcome and commits its offset. It
// returns false when the worker must stop (revoked, draining, crashed)
// without committing.
func (w *worker) handle(rec *kgo.Record) bool {
	e := w.e
	e.m.inflight.Inc()
	defer e.m.inflight.Dec()
	var b payout.Batch
	for attempt := 0; ; attempt++ {
		err := e.cfg.Codec.DecodeBatch(rec.Value, &b)
		if err == nil {
			break
		}
		if events.Permanent(err) {
			w.log.Error("dispatch: undecodable batch record: sent to the DLQ", "offset", rec.Offset, "err", err)
			send := func(r *kgo.Record) error { return e.produce(e.hard, w.soft, r) }
			if perr := e.sendDeadLetter(rec, err, send, w.log.With("offset", rec.Offset)); perr != nil {
				w.log.Error("dispatch: DLQ produce failed; will retry", "err", perr)
				if sleep(w.soft, e.backoff(attempt)) != nil {
					return false
				}
				continue
			}
			e.m.batches.WithLabelValues("dlq").Inc()
			return w.commit(rec)
		}
		e.m.retries.WithLabelValues("decode").Inc()
		if sleep(w.soft, e.backoff(attempt)) != nil {
			return false
		}
	}
	log := w.log.With("batch_id", b.BatchID, "attempt", b.Attempt)

	// A deferred batch waits for its NotBefore on the injected clock; its
	// partition stops fetching meanwhile and nothing is committed.
	if b.NotBefore != nil && e.now().Before(*b.NotBefore) {
		log.Info("dispatch: deferred batch not due yet: partition paused", "not_before", b.NotBefore.UTC())
		w.setNotDue(true)
		for e.now().Before(*b.NotBefore) && !e.tooFarAhead(*b.NotBefore, log) {
			if sleep(w.soft, e.cfg.PollInterval) != nil {
				w.setNotDue(false)
				return false
			}
		}
		w.setNotDue(false)
	}

	for attempt := 0; ; attempt++ {
		err := e.process(w.soft, &b, rec, log)
		if err == nil {
			break
		}
		if e.crashed.Load() || errors.Is(err, errCrashed) {
			e.crash()
			return false
		}
		if w.soft.Err() != nil {
			log.Info("dispatch: batch interrupted (revoked or draining); the next owner resumes it", "err", err)
			return false
		}
		if errors.Is(err, errStale) {
			e.m.restarts.Inc()
			log.Warn("dispatch: restarting the batch from its claim", "err", err)
			if attempt < 3 {
				continue
			}
		} else {
			e.m.retries.WithLabelValues("batch").Inc()
			log.Warn("dispatch: batch step failed; retrying", "err", err)
		}
		if sleep(w.soft, e.backoff(attempt)) != nil {
			return false
		}
	}
	return w.commit(rec)
}

// commit commits rec's offset. A failed commit is logged, not retried: the
// record is read again later and found already handled.
func (w *worker) commit(rec *kgo.Record) bool {
	if w.e.crashed.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(w.e.hard, 30*time.Second)
	defer cancel()
	var cerr error
	w.e.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		rec.Topic: {rec.Partition: {Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					cerr = err
				}
			}
		}
	})
	if cerr != nil {
		w.log.Warn("dispatch: offset commit failed; the record will be read again and skipped", "offset", rec.Offset, "err", cerr)
	}
	return true
}
