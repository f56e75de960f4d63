package track

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Webhook results, the values of the result label of
// payouts_tracker_webhooks_total.
const (
	ResultAccepted    = "accepted"      // 200: the transition was produced
	ResultDuplicate   = "duplicate"     // 200: already emitted, or older than the known status
	ResultBadSig      = "bad_signature" // 401
	ResultMalformed   = "malformed"     // 400
	ResultTooLarge    = "too_large"     // 413
	ResultUnknownType = "unknown_type"  // 202: a validly signed event we do not handle
	ResultUnmapped    = "unmapped"      // 202: signed, but Wompi does not know the transaction or batch either
	ResultUnavailable = "unavailable"   // 503: Kafka, Redis or Wompi could not be reached; Wompi retries
	// ResultRailNotEnabled: 404, a webhook of a single-payout rail whose
	// credentials this tracker does not have.
	ResultRailNotEnabled = "rail_not_enabled"
)

type metrics struct {
	webhooks *prometheus.CounterVec
	// railWebhooks is webhooks with the rail: a new series, so that the
	// alerts on webhooks_total keep their meaning.
	railWebhooks    *prometheus.CounterVec
	railTransitions *prometheus.CounterVec
	unknownStatuses *prometheus.CounterVec
	failuresHeld    *prometheus.CounterVec
	sigFailures     prometheus.Counter
	skew            prometheus.Counter
	transitions     *prometheus.CounterVec
	regressions     *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	rereads         *prometheus.CounterVec
	polls           *prometheus.CounterVec
	rebuilds        prometheus.Counter
	rebuildErrors   prometheus.Counter
	rebuildIDless   *prometheus.CounterVec
	leasesLost      prometheus.Counter
	produce         prometheus.Histogram
	handle          prometheus.Histogram
	// pending: payouts_tracker_oldest_pending_payout_age_seconds.
	pending *pendingAges
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_webhooks_total",
			Help: "Webhooks received, by result (accepted, duplicate, bad_signature, malformed, too_large, unknown_type, unmapped, unavailable).",
		}, []string{"result"}),
		railWebhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_rail_webhooks_total",
			Help: "Webhooks received, by rail (wompi, smartfastpay, wepayout) and result (the results of payouts_tracker_webhooks_total, and rail_not_enabled).",
		}, []string{"rail", "result"}),
		railTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_rail_transitions_total",
			Help: "Status transitions produced, by rail, kind (request, batch), source (WEBHOOK, POLL) and status.",
		}, []string{"rail", "kind", "source", "status"}),
		unknownStatuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_unknown_provider_statuses_total",
			Help: "Single-payout statuses read (webhook or poll) that the rail's mapping does not know: nothing emitted, the payout stays non-final, by rail and source.",
		}, []string{"rail", "source"}),
		failuresHeld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_failures_held_total",
			Help: "Failures of a payout not emitted yet, by rail: the rail's lookup by our id (Wompi: by the batch's reference, for an adopted transaction) lists another payout of the request that may still pay, or one created after it that ended too. The payout stays watched; one that keeps counting is a request left non-final.",
		}, []string{"rail"}),
		sigFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_tracker_webhook_signature_failures_total",
			Help: "Webhooks refused because their checksum was missing or wrong.",
		}),
		skew: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_tracker_webhook_future_timestamps_total",
			Help: "Validly signed webhooks whose timestamp is further in the future than the allowed skew (processed anyway).",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_transitions_total",
			Help: "Status transitions produced, by kind (request, batch), source (WEBHOOK, POLL) and status.",
		}, []string{"kind", "source", "status"}),
		regressions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_regressions_suppressed_total",
			Help: "Transitions not emitted because a later status was already known (a late or reordered event), by kind.",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_duplicates_total",
			Help: "Transitions not emitted because they were already emitted (redelivered events, polls), by kind.",
		}, []string{"kind"}),
		rereads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_stale_reads_total",
			Help: "Statuses read from the provider before a Redis data loss and therefore not emitted (read again instead), by kind.",
		}, []string{"kind"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_polls_total",
			Help: "Payouts polled, by result (pending, done, error).",
		}, []string{"result"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_tracker_poll_rebuilds_total",
			Help: "Rebuilds of the polling schedule from GET /payouts after a Redis loss.",
		}),
		rebuildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_tracker_poll_rebuild_errors_total",
			Help: "Polling rounds whose rebuild of the polling schedule after a Redis loss (or its check of the ready marker) failed: a rail's listing, Redis, or a read of the batch status topic. No payout is polled until a rebuild completes.",
		}),
		rebuildIDless: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_tracker_rebuild_idless_total",
			Help: "Payouts (Wompi: batches) a rebuild of the polling schedule found listed without the provider's id, by rail: they cannot be polled, only their webhooks track them. Any is worth a look.",
		}, []string{"rail"}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_tracker_status_leases_lost_total",
			Help: "Renewals of a status key's lease, during a produce that outlasts its first renewal, that failed (Redis unreachable) or found the key taken over. Any is worth a look: another worker may then emit a later status before this produce lands.",
		}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "payouts_tracker_produce_seconds",
			Help:    "Latency of one synchronous acks=all produce of a status event.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		handle: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "payouts_tracker_webhook_seconds",
			Help:    "Time to handle one webhook, from the body read to the answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, c := range []prometheus.Collector{m.webhooks, m.railWebhooks, m.railTransitions, m.unknownStatuses, m.failuresHeld, m.sigFailures, m.skew, m.transitions, m.regressions,
		m.duplicates, m.rereads, m.polls, m.rebuilds, m.rebuildErrors, m.rebuildIDless, m.leasesLost, m.produce, m.handle} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{ResultAccepted, ResultDuplicate, ResultBadSig, ResultMalformed, ResultTooLarge,
		ResultUnknownType, ResultUnmapped, ResultUnavailable, ResultOverloaded} {
		m.webhooks.WithLabelValues(r)
	}
	return m, nil
}
