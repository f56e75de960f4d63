package events

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The Kafka client's metrics pass Prometheus' lint (promtool check
// metrics): kprom names two gauges like counters, and they are renamed.
func TestKafkaMetricsFollowConventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts, err := KafkaConfig{Brokers: []string{"127.0.0.1:1"}}.Opts(reg, "payouts_test")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if !names["payouts_test_buffered_fetch_records"] || !names["payouts_test_buffered_produce_records"] {
		t.Fatalf("renamed gauges missing: %v", names)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.Contains(p.Text, "_total") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}
