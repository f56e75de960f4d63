package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// metrics are the engine's Prometheus series. Labels are low-cardinality
// by construction: outcomes, endpoints, code classes, reasons.
type metrics struct {
	batches           *prometheus.CounterVec   // outcome
	transactions      prometheus.Counter       // submitted
	wompiLatency      *prometheus.HistogramVec // endpoint, class
	stages            *prometheus.HistogramVec // stage
	wompiErrors       *prometheus.CounterVec   // endpoint, class
	retries           *prometheus.CounterVec   // step
	unanswered        prometheus.Counter
	awaited           prometheus.Gauge
	deferred          *prometheus.CounterVec // reason
	duplicates        prometheus.Counter
	unknownBanks      prometheus.Counter
	budgetUsage       *prometheus.GaugeVec // kind: amount, batches
	unhealthy         prometheus.Gauge
	healthWaits       prometheus.Counter
	recoveries        prometheus.Counter
	firstStarts       prometheus.Counter
	unindexed         *prometheus.CounterVec
	railsMissing      *prometheus.GaugeVec
	runIDUnknown      prometheus.Gauge
	mayEvict          prometheus.Gauge
	prefixMismatch    prometheus.Gauge
	startRewrites     prometheus.Counter
	postBlocked       *prometheus.CounterVec // code: 401, 403, 404, a 3xx
	duplicateRequests *prometheus.CounterVec // stage (the shared series of ops.DuplicateRequests)
	restarts          prometheus.Counter
	lateSkipped       prometheus.Counter
	refusalScans      *prometheus.CounterVec // found
	rejectedIndexed   prometheus.Counter
	notBeforeIgnored  prometheus.Counter
	listedPending     prometheus.Counter
	leasesLost        prometheus.Counter
	reconciled        *prometheus.CounterVec   // found
	providerDupes     *prometheus.CounterVec   // rail
	amountMismatch    *prometheus.CounterVec   // rail
	lookupsSkipped    *prometheus.CounterVec   // rail
	railLatency       *prometheus.HistogramVec // rail, endpoint, class: the single-payout rails' calls
	railErrors        *prometheus.CounterVec   // rail, endpoint, class
	railBlocked       *prometheus.CounterVec   // rail, code
	inflight          prometheus.Gauge
	railDeferred      *prometheus.CounterVec // rail, cause
	overLimit         *prometheus.CounterVec // rail
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "payouts", "dispatcher"
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_total",
			Help: "Batches handled, by outcome: submitted, deferred, rejected, duplicate (every request a duplicate), skipped (already handled), dlq."}, []string{"outcome"}),
		transactions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "transactions_submitted_total",
			Help: "Transactions Wompi accepted (SUBMITTED events)."}),
		wompiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "wompi_request_seconds",
			Help: "Latency of Wompi API calls by endpoint and result class.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10)},
			[]string{"endpoint", "class"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_stage_seconds",
			Help:    "Time a batch spends in each step: claim, screen (banks and duplicates), reconcile, budget, wait (health and rate limit), post, list (transactions), record (hand-off), produce, done.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 11)}, []string{"stage"}),
		wompiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "wompi_errors_total",
			Help: "Failed Wompi API calls by endpoint and class (4xx, 5xx, 409, 429, transport, timeout)."}, []string{"endpoint", "class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Retries by step (post, lookup, transactions, redis, kafka, ...)."}, []string{"step"}),
		unanswered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "produce_unanswered_total",
			Help: "Records a stopping worker (a drain, a revoke, a shutdown) gave up as perhaps written because the Kafka brokers had not answered their produce: their batch is not committed, and its lease and status keys stay held until the records' results come (one lease after the client's close)."}),
		awaited: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "produces_awaited",
			Help: "Produces given up unanswered (produce_unanswered_total) whose records the Kafka client still holds and may still write. Until each has its answer, the lease and status keys of the batch it belongs to (if any) stay held, so no other worker emits a later status first. After 2 minutes the process closes its client, which fails them, and the dispatcher exits to be restarted."}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deferred_total",
			Help: "Batches deferred, by reason code."}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "duplicates_dropped_total",
			Help: "Requests dropped from a batch because another batch owns their requestId."}),
		unknownBanks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "unknown_bank_total",
			Help: "Requests rejected because GET /banks has no bankId for their bank code."}),
		budgetUsage: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "budget_usage_ratio",
			Help: "Share of the daily budget reserved, as of the last reservation (amount: of the account last seen; batches: of the client)."}, []string{"kind"}),
		unhealthy: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "wompi_unhealthy",
			Help: "1 while GET /health says UNHEALTHY: posting is paused."}),
		healthWaits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "health_waits_total",
			Help: "Times a POST waited because Wompi was UNHEALTHY."}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_recoveries_total",
			Help: "Recoveries run after Redis lost the dispatcher's state, or found none."}),
		runIDUnknown: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "redis_run_id_unknown",
			Help: "1 when Redis gives no run id (INFO server refused or unsupported): a restart or failover that loses the last writes is not noticed."}),
		mayEvict: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "redis_may_evict",
			Help: "1 when Redis may evict keys (maxmemory with a policy other than noeviction, or INFO memory unreadable): every single-payout payee is then looked up before its POST."}),
		prefixMismatch: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "peer_redis_prefix_mismatch",
			Help: "1 when a start record written on TOPIC_DISPATCHER_STARTS in the last day names another REDIS_PREFIX than this replica's: replicas of one group that keep their state apart do not see each other's claims or duplicate index, and a payee can be paid twice."}),
		startRewrites: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "start_record_failures_total",
			Help: "Daily rewrites of this process's start record on TOPIC_DISPATCHER_STARTS that failed (each is tried again a minute later): while none lands, a recovery after a Redis loss may wait less than this process's POSTs need and, past the topic's retention, forget its rails."}),
		firstStarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_first_starts_total",
			Help: "Recoveries that skipped RECOVERY_GRACE for Wompi: a first start, where the only record ever written to TOPIC_DISPATCHER_STARTS is this process's and no rail lists a payout in the dedupe window (single-payout jobs still wait it out before they reserve or look anyone up)."}),
		unindexed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rebuild_unindexed_total",
			Help: "Payouts a single-payout rail listed, during a recovery's rebuild of the duplicate index, without our requestId: they cannot be indexed, so a copy of their request sent on another rail would not be recognised."}, []string{"rail"}),
		railsMissing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "recovery_rails_missing",
			Help: "1 for a rail this replica's last recovery attempt had to list and could not: a dispatcher that pays through it has started on this Kafka, and this replica has no credentials for it. The recovery waits for a replica that has them; no batch is dispatched meanwhile."}, []string{"rail"}),
		postBlocked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "post_blocked_total",
			Help: "POST /payouts answered 401, 403, 404 or a redirect (3xx, never followed), by code: no retry fixes these (a wrong or rotated API key, a missing permission, a wrong base URL). The batch waits with the longest backoff and never outlives its idempotency key; an alert fires."}, []string{"code"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batch_restarts_total",
			Help: "Batches restarted from the claim because the epoch changed or the lease was lost."}),
		lateSkipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "late_statuses_skipped_total",
			Help: "SUBMITTED (or a batch's PENDING) not emitted because the tracker had already emitted that status or a later one (a webhook beat the dispatcher), or may have before a Redis data loss; a request whose listed PENDING would have followed it counts once."}),
		refusalScans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "refusal_scans_total",
			Help: "Batches written before a Redis data loss, read again after it with nothing found at Wompi, whose REJECTED was looked for on the batch status topic before any POST, and single-payout batches of the same kind whose payees' REJECTED were looked for on the status topic (one read per batch); found=true: rejected before the loss, ended the same way again; found=error: the topic could not be read, and the batch is retried, never posted meanwhile."}, []string{"found"}),
		rejectedIndexed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "recovery_rejected_indexed_total",
			Help: "RequestIds a recovery after a Redis loss indexed from the REJECTED a dispatcher wrote on the status topic within DEDUPE_WINDOW (no rail lists them): a copy of such a request is a DUPLICATE_REQUEST, never paid. A REJECTED older than the topic's retention is not found."}),
		notBeforeIgnored: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deferred_not_before_ignored_total",
			Help: "Deferred batches whose notBefore lay further ahead than any deferral sets (a clock stepped forward when they were deferred, a record written by hand): handled at once rather than stalling their partition."}),
		listedPending: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "listed_pending_total",
			Help: "Request PENDING statuses the dispatcher emitted from its listing of a new Wompi payout (the payout's first poll), after their SUBMITTED; the tracker counts the PENDING it emits itself."}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "status_leases_lost_total",
			Help: "Status keys whose lease a renewal could not keep (Redis unreachable, or taken over) while their SUBMITTED was waiting or being produced: a later status may then precede it."}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reconciliations_total",
			Help: "Lookups by reference before a POST, by whether the batch was already in Wompi."}, []string{"found"}),
		providerDupes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "provider_duplicates_total",
			Help: "Lookups that found more than one payout under our id: by requestId at a single-payout rail, by batch reference at Wompi (someone posted our id twice: not the dispatcher within DEDUPE_WINDOW, since each of its POSTs follows a lookup that found nothing or the duplicate index's proof that no dispatcher posted it), by rail."}, []string{"rail"}),
		amountMismatch: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "adopted_amount_mismatch_total",
			Help: "Payouts a single-payout rail holds under one of our requestIds, or transactions of a Wompi payout found under our batch's reference, for another amount than the request's, found by a lookup and adopted (our id names them; never posted again), by rail: the requestId was used for another payout (sent again with another amount after DEDUPE_WINDOW, or posted by someone else)."}, []string{"rail"}),
		lookupsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lookups_skipped_total",
			Help: "Single-payout payees posted without a lookup first, by rail: the duplicate index proved no dispatcher had posted them (indexed for the first time in a complete epoch; DISPATCHER_LOOKUP_EVERY_PAYEE=true turns it off)."}, []string{"rail"}),
		railLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "rail_request_seconds",
			Help:    "Latency of the single-payout rails' calls (create, find), by rail, endpoint and class (ok, or the rail's error class).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"rail", "endpoint", "class"}),
		railErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rail_errors_total",
			Help: "Failed calls to the single-payout rails, by rail, endpoint and class (retryable, outcome_unknown, rejected, deferred, unauthorized, permanent)."},
			[]string{"rail", "endpoint", "class"}),
		railBlocked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rail_post_blocked_total",
			Help: "Calls to a single-payout rail refused for a reason no retry fixes (401, 403: credentials, permission), by rail and code. The batch waits at the longest backoff; an alert fires."},
			[]string{"rail", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "batches_in_flight",
			Help: "Batches being worked on."}),
		railDeferred: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rail_deferred_total",
			Help: "Batches deferred with RAIL_NOT_CONFIGURED, by rail and cause: not_enabled (no credentials here), not_implemented (credentials set, but this release cannot pay through the rail yet), unknown (rail label unknown too). Never paid, never lost: they retry every 15 minutes; an alert fires."},
			[]string{"rail", "cause"}),
		overLimit: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "over_daily_limit_total",
			Help: "Batches deferred to the next day because what they still have to pay is, alone, above their account's daily limit: they are deferred every day, never split or dropped, until the limit is raised (DAILY_LIMIT_CENTS, or the provider's limit). An alert fires."},
			[]string{"rail"}),
	}
	for _, c := range []prometheus.Collector{m.batches, m.transactions, m.wompiLatency, m.stages, m.wompiErrors, m.retries, m.unanswered, m.awaited, m.deferred,
		m.duplicates, m.unknownBanks, m.budgetUsage, m.unhealthy, m.healthWaits, m.recoveries, m.firstStarts, m.unindexed, m.railsMissing, m.runIDUnknown, m.mayEvict, m.prefixMismatch, m.startRewrites, m.postBlocked, m.restarts, m.lateSkipped, m.refusalScans, m.rejectedIndexed, m.notBeforeIgnored, m.listedPending, m.leasesLost,
		m.reconciled, m.providerDupes, m.amountMismatch, m.lookupsSkipped, m.railLatency, m.railErrors, m.railBlocked, m.inflight, m.railDeferred, m.overLimit} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("dispatch: metrics: %w", err)
		}
	}
	// The RAIL_NOT_CONFIGURED series exist from the start, at 0, so that the
	// alert's increase() sees the first deferral, not only the second.
	for _, n := range rail.Names {
		if n != rail.Wompi {
			m.railDeferred.WithLabelValues(string(n), railNotEnabled)
			m.railDeferred.WithLabelValues(string(n), railNotImplemented)
		}
	}
	m.railDeferred.WithLabelValues(railUnknown, railUnknown)
	for _, n := range rail.Names {
		m.overLimit.WithLabelValues(string(n))
	}
	var err error
	if m.duplicateRequests, err = ops.DuplicateRequests(reg); err != nil {
		return nil, fmt.Errorf("dispatch: metrics: %w", err)
	}
	return m, nil
}

// class buckets a Wompi call result for labels: its rail error's HTTP
// status, or for no answer a timeout or another transport failure; "other"
// for an error before anything was sent (no status, Permanent) and for
// anything that is not the rail's.
func class(err error) string {
	if err == nil {
		return "ok"
	}
	re, ok := railError(err)
	if !ok {
		return "other"
	}
	var ne net.Error
	switch s := re.HTTPStatus; {
	case s == 0 && re.Class == rail.Permanent:
		return "other"
	case s == 0 && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case s == 0:
		return "transport"
	case s == 409 || s == 429:
		return strconv.Itoa(s)
	case s >= 500:
		return "5xx"
	case s >= 400:
		return "4xx"
	}
	return "other"
}

// stage records the time since start as one step of a batch and returns
// now, the next step's start.
func (m *metrics) stage(name string, start time.Time) time.Time {
	now := time.Now()
	m.stages.WithLabelValues(name).Observe(now.Sub(start).Seconds())
	return now
}

// observe records one Wompi call.
// observeRail records one call to a single-payout rail.
func (m *metrics) observeRail(name rail.Name, endpoint string, start time.Time, err error) {
	c := "ok"
	if err != nil {
		c = string(rail.ClassOf(err))
		m.railErrors.WithLabelValues(string(name), endpoint, c).Inc()
	}
	m.railLatency.WithLabelValues(string(name), endpoint, c).Observe(time.Since(start).Seconds())
}

func (m *metrics) observe(endpoint string, start time.Time, err error) {
	c := class(err)
	m.wompiLatency.WithLabelValues(endpoint, c).Observe(time.Since(start).Seconds())
	if err != nil {
		m.wompiErrors.WithLabelValues(endpoint, c).Inc()
	}
}
