package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// scrape fetches url on a fresh connection, so no pooled connection hides a
// closed server.
func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// eventually scrapes url until ok holds for its answer, for up to 5 s.
func eventually(t *testing.T, url, what string, ok func(code int, body string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := scrape(t, url)
		if ok(code, body) {
			return
		}
		if time.Now().After(deadline) {
			if len(body) > 200 {
				body = body[:200] + "…"
			}
			t.Fatalf("%s: GET %s = %d %q", what, url, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(want int) func(int, string) bool {
	return func(code int, _ string) bool { return code == want }
}

// TestWorkerRun runs a worker whose run func plays the engine: the test's
// checks happen inside it, while Run serves around it.
func TestWorkerRun(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ops_worker_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Inc()
	var ready atomic.Bool
	var addr net.Addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	engineErr := errors.New("engine stopped")
	ran := false

	w := Worker{
		MetricsAddr:   "127.0.0.1:0",
		Registry:      reg,
		Ready:         ready.Load,
		ReadyInterval: 5 * time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
		Started:       func(a net.Addr) { addr = a },
	}
	err := w.Run(ctx, func(rctx context.Context) error {
		ran = true
		if addr == nil {
			t.Fatal("Started was not called before run")
		}
		base := "http://" + addr.String()
		if code, body := scrape(t, base+"/metrics"); code != 200 || !strings.Contains(body, "ops_worker_test_total 1") {
			t.Fatalf("metrics = %d %s", code, body)
		}
		if code, _ := scrape(t, base+"/healthz"); code != 200 {
			t.Fatalf("healthz = %d", code)
		}
		// Readiness follows the ready func both ways.
		if code, _ := scrape(t, base+"/readyz"); code != 503 {
			t.Fatalf("readyz before the engine is ready = %d", code)
		}
		ready.Store(true)
		eventually(t, base+"/readyz", "readyz once the engine is ready", status(200))
		ready.Store(false)
		eventually(t, base+"/readyz", "readyz once the engine is not ready", status(503))
		ready.Store(true)
		eventually(t, base+"/readyz", "readyz once the engine is ready again", status(200))

		// SIGTERM: run's ctx ends, /readyz fails although the engine is
		// still ready, and the rest keeps serving while run drains.
		cancel()
		if rctx.Err() == nil {
			t.Fatal("run's ctx not done after the worker's ctx was")
		}
		eventually(t, base+"/readyz", "readyz while draining", status(503))
		if code, _ := scrape(t, base+"/healthz"); code != 200 {
			t.Fatalf("healthz while draining = %d", code)
		}
		if code, body := scrape(t, base+"/metrics"); code != 200 || !strings.Contains(body, "ops_worker_test_total 1") {
			t.Fatalf("metrics while draining = %d %s", code, body)
		}
		return engineErr
	})
	if !ran {
		t.Fatalf("run not called; Run = %v", err)
	}
	if !errors.Is(err, engineErr) {
		t.Fatalf("Run = %v, want run's error %v", err, engineErr)
	}
	if conn, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("metrics server still listens on %s after Run returned", addr)
	}
}

func TestWorkerReturnsNilAfterCleanRun(t *testing.T) {
	w := Worker{MetricsAddr: "127.0.0.1:0"}
	if err := w.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestWorkerBadMetricsAddr(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ name, addr string }{
		{"in use", taken.Addr().String()},
		{"not an address", "no-port"},
		{"bad port", "127.0.0.1:99999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Worker{MetricsAddr: tc.addr, Started: func(net.Addr) { t.Error("Started called") }}
			err := w.Run(context.Background(), func(context.Context) error {
				t.Error("run called")
				return nil
			})
			if err == nil || !strings.HasPrefix(err.Error(), "METRICS_ADDR: ") {
				t.Fatalf("Run = %v, want an error naming METRICS_ADDR", err)
			}
		})
	}
}

// TestWorkerExportsLag checks that the worker runs the lag exporter for its
// group: the gauge shows on /metrics with the records the group has not
// committed.
func TestWorkerExportsLag(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic(t, "worker-lag", 1)
	var recs []*kgo.Record
	for range 5 {
		recs = append(recs, &kgo.Record{Value: []byte("x")})
	}
	k.Produce(t, topic, recs...)
	group := "g-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1})
	resp, err := k.Admin(t).CommitOffsets(ctx, group, commit)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}

	var addr net.Addr
	w := Worker{
		MetricsAddr: "127.0.0.1:0",
		Group:       group,
		LagKafka:    []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)},
		Started:     func(a net.Addr) { addr = a },
	}
	err = w.Run(ctx, func(context.Context) error {
		want := `payouts_consumer_group_lag{group="` + group + `",topic="` + topic + `"} 3`
		eventually(t, "http://"+addr.String()+"/metrics", "want "+want, func(code int, body string) bool {
			return code == 200 && strings.Contains(body, want)
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
