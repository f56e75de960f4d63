package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wompi-payouts/pipeline/pkg/ops"
)

type metrics struct {
	requests  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	batches   *prometheus.CounterVec
	batchSize prometheus.Histogram
	txns      *prometheus.CounterVec
	window    prometheus.Gauge
	stalls    prometheus.Counter

	produceErrors prometheus.Counter
	seenErrors    prometheus.Counter

	// counts of the open window, published only when it commits, so the
	// counters count committed effects.
	duplicates   *prometheus.CounterVec // the shared payouts_duplicate_requests_total{stage}
	pendReq      map[string]int
	pendRejected map[string]int
	pendBatches  map[CloseReason]int
	pendSizes    []int
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_ingest_requests_total", Help: "Requests committed, by outcome (batched, rejected, dlq, duplicate).",
		}, []string{"outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_ingest_rejected_total", Help: "Requests rejected by ingest (validation, too large, undecodable), by reason code.",
		}, []string{"reason"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_ingest_batches_total", Help: "Batches committed, by what closed them (count, amount, bytes, window, pressure, shutdown).",
		}, []string{"close_reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "payouts_ingest_batch_transactions", Help: "Transactions per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payouts_ingest_transactions_total", Help: "Kafka transactions ended, by result (committed, aborted, error).",
		}, []string{"result"}),
		window: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payouts_ingest_window_seconds", Help: "Length of the current batching window, from the daily batch budget.",
		}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_ingest_stalls_total", Help: "Kafka sessions replaced because they owned waiting requests and consumed none for INGEST_STALL_TIMEOUT.",
		}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_ingest_produce_errors_total", Help: "Windows aborted because a record could not be produced (for example MESSAGE_TOO_LARGE); the window is re-read after a backoff.",
		}),
		seenErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payouts_ingest_seen_index_errors_total", Help: "Windows aborted because the seen index in Redis (REDIS_URL) could not be read or written; the window is re-read after a backoff, and nothing is batched or rejected without the check.",
		}),
		pendReq:      map[string]int{},
		pendRejected: map[string]int{},
		pendBatches:  map[CloseReason]int{},
	}
	for _, c := range []prometheus.Collector{m.requests, m.rejected, m.batches, m.batchSize, m.txns, m.window, m.stalls, m.produceErrors, m.seenErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	var err error
	if m.duplicates, err = ops.DuplicateRequests(reg); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) pend(outcome string)     { m.pendReq[outcome]++ }
func (m *metrics) rejectedReason(r string) { m.pendRejected[r]++ }
func (m *metrics) batch(r CloseReason, n int) {
	m.pendBatches[r]++
	m.pendSizes = append(m.pendSizes, n)
}

func (m *metrics) commit() {
	for k, v := range m.pendReq {
		m.requests.WithLabelValues(k).Add(float64(v))
	}
	for k, v := range m.pendRejected {
		m.rejected.WithLabelValues(k).Add(float64(v))
	}
	for k, v := range m.pendBatches {
		m.batches.WithLabelValues(string(k)).Add(float64(v))
	}
	for _, n := range m.pendSizes {
		m.batchSize.Observe(float64(n))
	}
	if n := m.pendReq["duplicate"]; n > 0 {
		m.duplicates.WithLabelValues("ingest").Add(float64(n))
	}
	m.discard()
}

func (m *metrics) discard() {
	clear(m.pendReq)
	clear(m.pendRejected)
	clear(m.pendBatches)
	m.pendSizes = m.pendSizes[:0]
}
