package ops

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LagExporter publishes a consumer group's lag per topic as the gauge
// payouts_consumer_group_lag{group, topic}: the records its members have
// yet to commit. The alerts and the KEDA autoscaler key on it.
type LagExporter struct {
	adm   *kadm.Client
	cl    *kgo.Client
	group string
	gauge *prometheus.GaugeVec
	log   *slog.Logger
	// ownsClient: Run closes cl when it ends.
	ownsClient bool
}

// NewLagExporter builds an exporter with its own admin connection (opts:
// the worker's base Kafka options) and registers the gauge on reg.
func NewLagExporter(reg prometheus.Registerer, opts []kgo.Opt, group string, log *slog.Logger) (*LagExporter, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	l, err := newLagExporterOn(reg, cl, group, log)
	if err != nil {
		cl.Close()
		return nil, err
	}
	l.ownsClient = true
	return l, nil
}

// newLagExporterOn builds an exporter on a client the caller owns (and
// closes): Worker shares one client between the lag and its topic checks,
// since the base options may carry a kprom hook that registers its
// collectors once per client.
func newLagExporterOn(reg prometheus.Registerer, cl *kgo.Client, group string, log *slog.Logger) (*LagExporter, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "payouts_consumer_group_lag", Help: "Records the consumer group has not committed yet, per topic.",
	}, []string{"group", "topic"})
	if err := reg.Register(g); err != nil {
		return nil, err
	}
	return &LagExporter{adm: kadm.NewClient(cl), cl: cl, group: group, gauge: g, log: log}, nil
}

// Update measures the lag once.
func (l *LagExporter) Update(ctx context.Context) error {
	lags, err := l.adm.Lag(ctx, l.group)
	if err != nil {
		return err
	}
	gl, ok := lags[l.group]
	if !ok {
		return nil
	}
	if err := gl.Error(); err != nil {
		return err
	}
	for topic, tl := range gl.Lag.TotalByTopic() {
		l.gauge.WithLabelValues(l.group, topic).Set(float64(tl.Lag))
	}
	return nil
}

// Run updates the gauge every interval until ctx is done, then closes the
// admin connection if the exporter made it (NewLagExporter).
func (l *LagExporter) Run(ctx context.Context, interval time.Duration) {
	if l.ownsClient {
		defer l.cl.Close()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		uctx, cancel := context.WithTimeout(ctx, interval)
		if err := l.Update(uctx); err != nil && ctx.Err() == nil {
			l.log.Debug("consumer lag not measured", "group", l.group, "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
