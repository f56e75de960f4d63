package track

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// Config configures an Engine. The zero value of each knob gets the
// default documented on it.
type Config struct {
	// Kafka holds the base client options of the producer (seed brokers,
	// TLS, SASL, metrics hooks: events.KafkaConfig.Opts). The engine adds
	// acks=all, idempotence and no linger. Required.
	Kafka []kgo.Opt
	// ReadKafka are the same base options without metric hooks (kprom
	// registers its collectors once per client): a rebuild of the polling
	// schedule after a Redis loss reads Topics.BatchStatus with a
	// short-lived client of its own built from them. Default Kafka, which
	// must then carry no kprom hook.
	ReadKafka []kgo.Opt
	// Codec encodes the status events. Required.
	Codec *events.Codec
	// Topics: Status and BatchStatus are used; default events.DefaultTopics.
	Topics events.Topics
	// Redis holds the last-known statuses, the submitted hand-off and the
	// polling schedule. Required.
	Redis redis.UniversalClient
	// Prefix namespaces every Redis key (REDIS_PREFIX; default
	// submitted.DefaultPrefix), the same prefix the
	// dispatcher gives pkg/submitted.
	Prefix string
	// Wompi is the batch rail (wompi.NewRail over a *wompi.Client): its
	// lookups and polling, and the verification of POST /webhooks/wompi
	// (VerifyWebhook, with the rail's events secret, WOMPI_EVENTS_SECRET:
	// a rail without one refuses every webhook). Required.
	Wompi rail.BatchTracking
	// SmartFastPay tracks the payouts the dispatcher hands off as
	// "smartfastpay:<id>" (rail.HandOffID) and verifies POST
	// /webhooks/smartfastpay with its webhook secret (Client.Webhooks).
	// Nil while the rail is not enabled: its webhooks are answered 404 and
	// its scheduled payouts are rescheduled with a warning.
	SmartFastPay *smartfastpay.Client
	// WEpayout is SmartFastPay's counterpart for "wepayout:<id>" and POST
	// /webhooks/wepayout; WEpayoutAPIKey (WEPAYOUT_API_KEY, which signs its
	// webhooks) is required with it.
	WEpayout       *wepayout.Client
	WEpayoutAPIKey string

	// ProduceTimeout bounds one synchronous produce; default 5 s. Past it
	// the webhook is answered 503 and Wompi retries.
	ProduceTimeout time.Duration
	// RequestTimeout bounds the whole handling of one webhook (Redis,
	// Wompi lookups, produce); default 12 s, under the server's 15 s write
	// timeout.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a webhook body; default 1 MiB (larger: 413).
	MaxBodyBytes int64
	// MaxConcurrentWebhooks bounds the webhooks handled at once by this
	// replica (TRACKER_MAX_CONCURRENT_WEBHOOKS); default
	// DefaultMaxConcurrentWebhooks. One more is answered 503 with
	// Retry-After before its body is read (Wompi retries it, the poller
	// catches what it misses), and counted as webhooks_total{result=
	// "overloaded"}. With MaxBodyBytes it bounds the memory webhooks can
	// take, so a flood cannot starve the poller that shares the process.
	MaxConcurrentWebhooks int
	// FutureSkew: a validly signed webhook whose timestamp is further than
	// this ahead of Now is logged and counted, but still processed; default
	// 5 min. See the package documentation on replays.
	FutureSkew time.Duration
	// StatusTTL is how long a last-known status is kept; default 30 days.
	StatusTTL time.Duration
	// Lease is how long one attempt holds a status key before another may
	// take over; default ProduceTimeout + 5 s.
	Lease time.Duration
	// LossGrace is how long after the status epoch marker was written
	// anew after a Redis data loss no status is emitted on a key that
	// holds none (see checkEpoch); default DefaultLossGrace, negative for
	// none (tests of other things).
	LossGrace time.Duration
	// KeyByKey makes a poll page's statuses confirmed key by key rather
	// than by one confirmation key per page (STATUS_CONFIRM_KEYS=false): set
	// it on every tracker and dispatcher while a version before
	// confirmation keys still runs beside this one, which cannot read them.
	KeyByKey bool

	// PollInterval is the pause between two polling rounds; default 5 s.
	PollInterval time.Duration
	// PollMaxBackoff caps the per-payout backoff by age (10 s for a young
	// payout, up to 30 min for one a day old); default 30 min. A test or
	// sandbox that wants lost webhooks caught quickly lowers it.
	PollMaxBackoff time.Duration
	// PollBatch is how many due payouts one round claims; default 50.
	PollBatch int
	// PollLease is how long a claimed payout stays away from other
	// replicas; default 2 min.
	PollLease time.Duration
	// PollConcurrency bounds the payouts polled at once; default 4.
	PollConcurrency int
	// SweepInterval is how often a replica checks that every non-final
	// payout of the hand-off is on the polling schedule (a partial Redis
	// loss can drop one entry and keep the ready marker); default 10 min.
	// The first polling round sweeps too.
	SweepInterval time.Duration
	// RebuildLookback: after a Redis loss the schedule is rebuilt from the
	// non-final payouts, plus the final ones created (or, a scheduled
	// Wompi batch, dispersed; or, a Wompi batch, last emitted on the batch
	// status topic) within this window, so that a final status
	// whose webhook was lost while Redis was gone is still emitted (again,
	// with the same eventId, if it was already); default 48 h, negative
	// for none.
	RebuildLookback time.Duration
	// ReturnWatch is how long an APPROVED SmartFastPay payout stays on the
	// polling schedule (at PollMaxBackoff) after its submission, or after
	// its payment (the provider's updated_at) when that is later: a refund
	// or return may follow a payment, and its callback may be lost; default
	// 24 h. The provider retries a callback for days, so a later reversal
	// still arrives by webhook.
	ReturnWatch time.Duration
	// DedupeWindow is how long a requestId is single-use (DEDUPE_WINDOW,
	// the dispatcher's and ingest's): a payout under our id made more than
	// half of it before the payout the dispatcher adopted is an earlier
	// life's (adoptedFailure); default 30 days.
	DedupeWindow time.Duration

	// Now is the clock for scheduling and event times; default time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() error {
	switch {
	case len(c.Kafka) == 0:
		return errors.New("track: Kafka options are required")
	case c.Codec == nil:
		return errors.New("track: a Codec is required")
	case c.Redis == nil:
		return errors.New("track: a Redis client is required")
	case c.Wompi == nil:
		return errors.New("track: a Wompi rail is required")
	case c.WEpayout != nil && c.WEpayoutAPIKey == "":
		return errors.New("track: the WEpayout API key is required with a WEpayout client (it verifies the webhooks)")
	}
	if c.Prefix == "" {
		c.Prefix = submitted.DefaultPrefix
	}
	if c.Topics == (events.Topics{}) {
		c.Topics = events.DefaultTopics()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ProduceTimeout, 5*time.Second)
	def(&c.RequestTimeout, 12*time.Second)
	def(&c.FutureSkew, 5*time.Minute)
	def(&c.StatusTTL, 30*24*time.Hour)
	def(&c.Lease, c.ProduceTimeout+5*time.Second)
	if c.LossGrace == 0 {
		c.LossGrace = defaultLossGrace
	}
	def(&c.PollInterval, 5*time.Second)
	def(&c.PollMaxBackoff, 30*time.Minute)
	def(&c.PollLease, 2*time.Minute)
	def(&c.SweepInterval, 10*time.Minute)
	if c.RebuildLookback == 0 {
		c.RebuildLookback = 48 * time.Hour
	}
	def(&c.ReturnWatch, 24*time.Hour)
	def(&c.DedupeWindow, 30*24*time.Hour)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxConcurrentWebhooks <= 0 {
		c.MaxConcurrentWebhooks = DefaultMaxConcurrentWebhooks
	}
	if c.PollBatch <= 0 {
		c.PollBatch = 50
	}
	if c.PollConcurrency <= 0 {
		c.PollConcurrency = 4
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

// Engine is one tracker replica: the webhook handler (Handler) and the
// polling fallback (RunPoller, PollOnce). Replicas share Redis and Kafka
// and need nothing else in common.
type Engine struct {
	// beforeImpliedApproved, in tests only, runs between a RETURNED
	// refused as older and the APPROVED it implies (emitRequest).
	beforeImpliedApproved func()

	cfg      Config
	m        *metrics
	log      *slog.Logger
	producer *kgo.Client
	statuses *statusStore
	sub      *submitted.Store
	hooks    chan struct{} // one token per webhook being handled
	closed   sync.Once
	// late counts the produces that outlasted ProduceTimeout and are still
	// settled in the background (settleLate); Close waits for them.
	late sync.WaitGroup

	sweepMu   sync.Mutex
	lastSweep time.Time // by cfg.Now

	// enrolled is the Wompi payouts this process put on the polling
	// schedule from a webhook without hand-off (enrollBatch) within
	// enrollMemory: their other transactions' webhooks write nothing.
	enrolled recentIDs
}

// New validates cfg and starts the engine's Kafka producer (it connects
// lazily). Close it when done.
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	m.pending = newPendingAges(2*cfg.PollMaxBackoff, cfg.Now)
	if err := cfg.Registerer.Register(m.pending); err != nil {
		return nil, err
	}
	opts := append(append([]kgo.Opt(nil), cfg.Kafka...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(max(cfg.ProduceTimeout, time.Second)), // franz-go refuses less than 1 s
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("track: kafka producer: %w", err)
	}
	if err := CheckIdempotentProducer(cl); err != nil {
		cl.Close()
		return nil, fmt.Errorf("track: kafka producer: %w", err)
	}
	if cfg.ReadKafka == nil && events.HasHooks(cl) {
		// A second client built from these options would register the
		// kprom hook's collectors again, and panic.
		cl.Close()
		return nil, errors.New("track: Kafka carries hooks (kprom): set ReadKafka to the same base options without them")
	}
	return &Engine{
		cfg: cfg, m: m, log: cfg.Logger, producer: cl,
		statuses: newStatusStore(cfg.Redis, cfg.Prefix, cfg.StatusTTL, cfg.Lease).withLossGrace(cfg.LossGrace).withKeyByKey(cfg.KeyByKey),
		sub:      submitted.New(cfg.Redis, cfg.Prefix, 0),
		hooks:    make(chan struct{}, cfg.MaxConcurrentWebhooks),
	}, nil
}

// Close flushes and closes the producer. Call it after the webhook server
// has drained and the poller stopped.
func (e *Engine) Close() {
	e.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ProduceTimeout)
		defer cancel()
		_ = e.producer.Flush(ctx)
		e.producer.Close()
		e.late.Wait()
	})
}

// Ping checks that Redis answers; /readyz uses it.
func (e *Engine) Ping(ctx context.Context) error { return e.cfg.Redis.Ping(ctx).Err() }

// errUnavailable wraps a failure that a retry may cure (Kafka, Redis or
// Wompi could not be reached): the webhook is answered 503.
var errUnavailable = errors.New("track: dependency unavailable")

// emitted is what one attempt to emit a transition came to.
type emitted int

const (
	emitNew        emitted = iota // produced now
	emitDuplicate                 // already emitted
	emitRegression                // a later status is known; nothing emitted
	emitReread                    // read before a Redis data loss; nothing emitted, read it again
)

// failure is why a request FAILED or was CANCELLED: the provider's reason
// code (D07) and its message, each "" when it gives none.
type failure struct{ code, message string }

// errNoReread: a transition's status must be read again (outcomeReread) but
// the caller gave no way to; its caller reads it again later (the next poll).
var errNoReread = errors.New("track: status must be read again")

// requestEvent builds and emits a request transition through the monotonic
// path. sc must carry every field but EventID and PreviousStatus. lookup,
// when non-nil, returns Wompi's current status of the transaction (with its
// failure reason) for the case where Redis knows nothing: the status and
// reason are then replaced by Wompi's when Wompi is further along.
//
// RETURNED reverses a payment: it follows APPROVED only. A tracker that
// missed the APPROVED (its webhook lost, the payout refunded before a poll
// saw it paid) would refuse the RETURNED for good and leave the request at
// PENDING: so when RETURNED is refused as older than what is known, the
// APPROVED it implies is emitted first (same amount; its eventId is the
// one the APPROVED would have had) and the RETURNED after it.
func (e *Engine) emitRequest(ctx context.Context, sc *payout.StatusChange, verified bool, since string,
	lookup func(ctx context.Context) (payout.Status, failure, error), mods ...func(*transition)) (emitted, error) {
	res, err := e.emitRequestOnce(ctx, sc, verified, since, lookup, mods...)
	if err != nil || res != emitRegression || sc.Status != payout.StatusReturned {
		return res, err
	}
	if e.beforeImpliedApproved != nil {
		e.beforeImpliedApproved()
	}
	ap := *sc
	ap.Status, ap.ReasonCode, ap.ReasonMessage = payout.StatusApproved, nil, nil
	ares, err := e.emitRequestOnce(ctx, &ap, true, since, nil, mods...)
	if err == nil && ares == emitReread {
		// since predates a Redis data loss (begin's check just read the
		// new marker). The APPROVED is implied by the RETURNED, which is
		// final: no later read can contradict it, and the only status that
		// may have followed that APPROVED before the loss is this RETURNED.
		// Checked against the marker as it is now, it goes on; refused
		// again, the RETURNED would be answered as a duplicate and lost.
		var cur string
		if cur, err = e.statuses.epoch(ctx); err == nil {
			ares, err = e.emitRequestOnce(ctx, &ap, true, cur, nil, mods...)
		}
	}
	switch {
	case err != nil:
		return res, err
	case ares == emitReread:
		return res, fmt.Errorf("%w: %w", errUnavailable, errNoReread)
	case ares == emitNew:
		e.log.Info("track: RETURNED without APPROVED known: the APPROVED it implies was emitted first", "id", sc.RequestID)
	case ares == emitDuplicate:
		// Another emitter (a late success callback, another replica)
		// emitted the APPROVED since the RETURNED was refused: RETURNED
		// may follow it now. Refused again, it would be lost for good,
		// since a poll that read it takes the payout off the schedule.
	default:
		return res, nil // the known status is not one APPROVED may follow
	}
	res, err = e.emitRequestOnce(ctx, sc, true, since, nil, mods...)
	if err == nil && res == emitRegression {
		// The APPROVED went out (or was known) but the key does not hold
		// it: its confirmation was lost (a Redis error after its produce)
		// and its lease ran out. Answered as done, the RETURNED would be
		// lost for good (a final payout without hand-off is on no
		// schedule): the webhook is answered 503 and the poll retries, and
		// the next try emits the APPROVED again (its eventId) then RETURNED.
		return res, fmt.Errorf("%w: %s: RETURNED refused after the APPROVED it implies (its confirmation lost)", errUnavailable, sc.RequestID)
	}
	return res, err
}

func (e *Engine) emitRequestOnce(ctx context.Context, sc *payout.StatusChange, verified bool, since string,
	lookup func(ctx context.Context) (payout.Status, failure, error), mods ...func(*transition)) (emitted, error) {
	txID := deref(sc.TransactionID)
	tr := transition{kind: kindRequest, id: sc.RequestID, to: string(sc.Status), ref: txID,
		final: settled(sc.Rail, sc.Status), verified: verified, since: since, rail: deref(sc.Rail)}
	for _, mod := range mods {
		mod(&tr)
	}
	build := func(from string) ([]byte, []byte, error) {
		sc.EventID = payout.EventID("status", sc.RequestID, string(sc.Status), txID)
		sc.PreviousStatus = nil
		if from != "" {
			p := payout.Status(from)
			sc.PreviousStatus = &p
		}
		v, err := e.cfg.Codec.AppendStatusChange(nil, sc)
		return []byte(sc.RequestID), v, err
	}
	refresh := func(ctx context.Context) error {
		if lookup == nil {
			return errNoReread
		}
		since, err := e.statuses.epoch(ctx)
		if err != nil {
			return fmt.Errorf("%w: redis: %w", errUnavailable, err)
		}
		st, reason, err := lookup(ctx)
		if err != nil {
			return err
		}
		if payout.Beyond(sc.Status, st) { // the rail is further along: emit the truth
			sc.Status, sc.OccurredAt = st, e.cfg.Now()
			sc.ReasonCode, sc.ReasonMessage = payout.OptString(reason.code), payout.OptString(reason.message)
			tr.to, tr.final = string(st), settled(sc.Rail, st)
		}
		tr.verified, tr.since = true, since
		return nil
	}
	return e.emit(ctx, &tr, e.cfg.Topics.Status, string(sc.Source), build, refresh)
}

// emitBatch is emitRequest for a batch.
func (e *Engine) emitBatch(ctx context.Context, bc *payout.BatchStatusChange, verified bool, since string,
	lookup func(ctx context.Context) (payout.BatchStatus, error)) (emitted, error) {
	payoutID := deref(bc.PayoutID)
	tr := transition{kind: kindBatch, id: bc.BatchID, to: string(bc.Status), ref: payoutID,
		final: bc.Status.Final(), verified: verified, since: since, rail: deref(bc.Rail)}
	build := func(from string) ([]byte, []byte, error) {
		bc.EventID = payout.EventID("batch", bc.BatchID, string(bc.Status), payoutID)
		bc.PreviousStatus = nil
		if from != "" {
			p := payout.BatchStatus(from)
			bc.PreviousStatus = &p
		}
		v, err := e.cfg.Codec.AppendBatchStatusChange(nil, bc)
		return []byte(bc.BatchID), v, err
	}
	refresh := func(ctx context.Context) error {
		if lookup == nil {
			return errNoReread
		}
		since, err := e.statuses.epoch(ctx)
		if err != nil {
			return fmt.Errorf("%w: redis: %w", errUnavailable, err)
		}
		st, err := lookup(ctx)
		if err != nil {
			return err
		}
		if payout.BatchBeyond(bc.Status, st) {
			bc.Status, bc.OccurredAt = st, e.cfg.Now()
			tr.to, tr.final = string(st), st.Final()
		}
		tr.verified, tr.since = true, since
		return nil
	}
	return e.emit(ctx, &tr, e.cfg.Topics.BatchStatus, string(bc.Source), build, refresh)
}

// emit is the one path every transition takes:
//
//  1. begin: a single-key Lua CAS takes the key's lease if the status moves
//     forward (else: duplicate or regression, nothing emitted);
//  2. produce the event synchronously, acks=all, within ProduceTimeout;
//  3. end: confirm the status, or abandon the attempt if the produce failed,
//     so nothing is recorded as emitted unless Kafka has it.
func (e *Engine) emit(ctx context.Context, tr *transition, topic, source string,
	build func(from string) (key, value []byte, err error), refresh func(context.Context) error) (emitted, error) {
	token := newToken()
	wait := time.Millisecond
	deadline := time.Now().Add(e.cfg.Lease)
	for {
		out, cur, err := e.statuses.begin(ctx, *tr, token)
		if err != nil {
			return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
		}
		switch out {
		case outcomeOK:
			return e.produce(ctx, tr, token, topic, source, cur, build)
		case outcomeStale:
			if cur == tr.to {
				e.m.duplicates.WithLabelValues(string(tr.kind)).Inc()
				return emitDuplicate, nil
			}
			e.m.regressions.WithLabelValues(string(tr.kind)).Inc()
			e.log.Info("track: older status suppressed", "kind", tr.kind, "id", tr.id, "status", tr.to, "known", cur, "source", source)
			return emitRegression, nil
		case outcomeUnknown, outcomeReread:
			if out == outcomeReread {
				e.m.rereads.WithLabelValues(string(tr.kind)).Inc()
			}
			if err := refresh(ctx); errors.Is(err, errNoReread) {
				e.log.Info("track: status read before a Redis data loss not emitted; it is read again", "kind", tr.kind, "id", tr.id, "status", tr.to, "source", source)
				return emitReread, nil
			} else if err != nil {
				return 0, err
			}
			continue
		case outcomeBusy:
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%w: %s %s is held by another attempt", errUnavailable, tr.kind, tr.id)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, fmt.Errorf("%w: %w", errUnavailable, ctx.Err())
			case <-t.C:
			}
			wait = min(2*wait, 50*time.Millisecond)
		default:
			return 0, fmt.Errorf("track: begin script answered %q", out)
		}
	}
}

func (e *Engine) produce(ctx context.Context, tr *transition, token, topic, source, from string,
	build func(from string) (key, value []byte, err error)) (emitted, error) {
	key, value, err := build(from)
	if err != nil {
		// An encoding error is a bug, not an outage: abandon and report.
		_ = e.statuses.end(context.WithoutCancel(ctx), *tr, token, false)
		return 0, fmt.Errorf("track: encode %s event: %w", tr.kind, err)
	}
	pctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	trs, tokens := []transition{*tr}, []string{token}
	ka := e.statuses.keepAlive(trs, tokens, []string{from}, false, e.leaseLost)
	e.producer.Produce(pctx, &kgo.Record{Topic: topic, Key: key, Value: value}, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err = <-done:
		ka.stop()
	case <-pctx.Done():
		// The record may still be written: franz-go fails it only once
		// that is safe. The key stays held until franz-go settles it, so
		// no later status can be emitted before it lands.
		e.m.produce.Observe(time.Since(start).Seconds())
		e.settleLate(ctx, trs, tokens, ka, func() []error { return []error{<-done} })
		return 0, fmt.Errorf("%w: kafka produce: %w", errUnavailable, pctx.Err())
	}
	e.m.produce.Observe(time.Since(start).Seconds())
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer ecancel()
	if err != nil {
		if perhapsWritten(err) {
			// Closed with the record perhaps sent: leave the attempt, whose
			// lease runs out, rather than free the key at once.
			return 0, fmt.Errorf("%w: kafka produce: %w", errUnavailable, err)
		}
		if aerr := e.statuses.end(ectx, *tr, token, false); aerr != nil {
			e.log.Warn("track: abandon attempt", "kind", tr.kind, "id", tr.id, "err", aerr)
		}
		return 0, fmt.Errorf("%w: kafka produce: %w", errUnavailable, err)
	}
	if err := e.statuses.end(ectx, *tr, token, true); err != nil {
		// Produced but not confirmed: the lease expires and the attempt
		// counts as abandoned, so a retry emits the same eventId again at
		// worst. Report success: Kafka has the event.
		e.log.Warn("track: confirm status", "kind", tr.kind, "id", tr.id, "err", err)
	}
	e.m.transitions.WithLabelValues(string(tr.kind), source, tr.to).Inc()
	e.m.railTransitions.WithLabelValues(tr.rail, string(tr.kind), source, tr.to).Inc()
	e.log.Debug("track: transition emitted", "kind", tr.kind, "id", tr.id, "status", tr.to, "previous", from, "source", source)
	return emitNew, nil
}

// settleLate ends, in the background, attempts whose produce outlasted
// ProduceTimeout: ka keeps their leases alive until results
// gives each record's outcome from franz-go (blocking until it has them all), then confirms what Kafka has
// and abandons what it refused. Abandoning at the timeout instead would
// free the keys while the records may still be written, and another worker
// could emit a later status that they then follow on the topic. A record
// failed by the client's close may have been sent: its attempt is left to
// its lease.
func (e *Engine) settleLate(ctx context.Context, trs []transition, tokens []string, ka *holder, results func() []error) {
	e.late.Add(1)
	go func() {
		defer e.late.Done()
		ok := make([]bool, len(trs))
		var endTrs []transition
		var endTokens []string
		var endOK []bool
		for i, err := range results() {
			if perhapsWritten(err) {
				continue
			}
			ok[i] = err == nil
			endTrs, endTokens, endOK = append(endTrs, trs[i]), append(endTokens, tokens[i]), append(endOK, ok[i])
		}
		ka.stop()
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if len(endTrs) > 0 {
			// Key by key: the attempts ended before these, under the same
			// token, were too (endGranted), so no confirmation key covers them.
			if err := e.statuses.endMany(ectx, endTrs, endTokens, endOK); err != nil {
				e.log.Warn("track: end late attempts", "transitions", len(endTrs), "err", err)
			}
		}
		e.log.Warn("track: produce outlasted its timeout; settled", "transitions", len(trs), "produced", countTrue(ok))
	}()
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// leaseLost logs and counts a renewal that could not keep every lease.
func (e *Engine) leaseLost(held, want int, err error) {
	e.m.leasesLost.Add(float64(want - held))
	e.log.Warn("track: status lease not kept during a produce", "err", leaseLostError(held, want, err))
}

// settled reports whether a request status of the given rail can change no
// more. APPROVED is final in the domain, but SmartFastPay may still refund
// or return the payout (RETURNED): for the status store it is not settled,
// so an unverified APPROVED on an empty key is read again from the provider
// and a verified one is checked against the Redis-loss epoch like any
// non-final status (else an APPROVED read or sent before a loss could be
// emitted after the RETURNED the loss forgot).
func settled(railName *string, st payout.Status) bool {
	if st == payout.StatusApproved && deref(railName) == string(rail.SmartFastPay) {
		return false
	}
	return st.Final()
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// readOpts are the base options of a short-lived client (Config.ReadKafka).
func (e *Engine) readOpts() []kgo.Opt {
	if e.cfg.ReadKafka != nil {
		return e.cfg.ReadKafka
	}
	return e.cfg.Kafka
}
