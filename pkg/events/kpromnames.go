package events

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gaugeNamesRegisterer registers kprom's collectors, renaming the two
// gauges it names like counters (buffered_fetch_records_total,
// buffered_produce_records_total): Prometheus' conventions keep _total for
// counters, and promtool check metrics flags them. The renamed series drop
// the suffix (…_buffered_fetch_records).
type gaugeNamesRegisterer struct{ prometheus.Registerer }

func (r gaugeNamesRegisterer) Register(c prometheus.Collector) error {
	if g, ok := c.(prometheus.GaugeFunc); ok {
		if name, ok := totalGaugeName(g); ok {
			return r.Registerer.Register(&renamedGauge{inner: g, name: strings.TrimSuffix(name, "_total")})
		}
	}
	return r.Registerer.Register(c)
}

func (r gaugeNamesRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// totalGaugeName returns the gauge's name when it ends in _total.
func totalGaugeName(g prometheus.GaugeFunc) (string, bool) {
	ch := make(chan *prometheus.Desc, 1)
	g.Describe(ch)
	close(ch)
	for d := range ch {
		s := d.String() // Desc{fqName: "…", help: …}
		const key = `fqName: "`
		i := strings.Index(s, key)
		if i < 0 {
			return "", false
		}
		rest := s[i+len(key):]
		name := rest[:strings.IndexByte(rest, '"')]
		return name, strings.HasSuffix(name, "_total")
	}
	return "", false
}

// renamedGauge re-emits a one-series gauge under another name, with its
// help and labels.
type renamedGauge struct {
	inner prometheus.Collector
	name  string
}

// Describe sends nothing: an unchecked collector (its one series is built
// at collection).
func (r *renamedGauge) Describe(chan<- *prometheus.Desc) {}

func (r *renamedGauge) Collect(ch chan<- prometheus.Metric) {
	in := make(chan prometheus.Metric, 1)
	go func() { r.inner.Collect(in); close(in) }()
	for m := range in {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil || pb.Gauge == nil {
			continue
		}
		labels := prometheus.Labels{}
		for _, lp := range pb.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		desc := prometheus.NewDesc(r.name, "Records buffered within the Kafka client (kprom's gauge, renamed without _total).", nil, labels)
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, pb.Gauge.GetValue())
	}
}
