package track

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Run, as cmd/tracker calls it: /readyz turns ready, a webhook is served,
// and on shutdown a webhook in flight (here waiting on a slow Wompi) is
// finished and produced before Run returns.
func TestRunServesAndDrainsInFlightWebhooks(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	cfg := f.sim.Config()
	// The tracker reaches Wompi through asking: once armed, the first call
	// that comes through closes asked (the webhook below is then in flight,
	// waiting on Wompi). A sleep for it was no barrier: a POST that reached
	// the listener only after cancel was refused by the shutdown.
	var armed atomic.Bool
	asked := make(chan struct{})
	var askedOnce sync.Once
	simURL, err := url.Parse(f.sim.URL())
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(simURL)
	asking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if armed.Load() {
			askedOnce.Do(func() { close(asked) })
		}
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(asking.Close)
	envs := map[string]string{
		"KAFKA_BROKERS": f.kafka.BrokersCSV(), "REDIS_URL": f.redis.URL(), "REDIS_PREFIX": f.prefix,
		"WOMPI_BASE_URL": asking.URL + strings.TrimPrefix(f.sim.BaseURL(), f.sim.URL()), "WOMPI_API_KEY": cfg.APIKey, "WOMPI_PRINCIPAL_ID": cfg.PrincipalID,
		"WOMPI_EVENTS_SECRET": cfg.EventsSecret, "TOPIC_STATUS": f.topics.Status, "TOPIC_BATCH_STATUS": f.topics.BatchStatus,
		"TRACKER_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "POLL_INTERVAL": "1h",
		"WEPAYOUT_API_KEY": "wep-key", // enables the rail: the gauge says so
	}
	set := config.New("tracker", func(k string) (string, bool) { v, ok := envs[k]; return v, ok })
	st := BindConfig(set)
	if err := set.Parse(nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- st.Run(ctx, testLogger(t), func(h, m net.Addr) { addrs <- [2]net.Addr{h, m} })
	}()
	var hookURL, metricsURL string
	select {
	case a := <-addrs:
		hookURL, metricsURL = "http://"+a[0].String(), "http://"+a[1].String()
	case err := <-done:
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get(t, metricsURL+"/readyz") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`payouts_rail_enabled{rail="wompi"} 1`, `payouts_rail_enabled{rail="wepayout"} 1`,
		`payouts_rail_enabled{rail="smartfastpay"} 0`} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// The enabled rail's webhook path is served (a body that is not an
	// event: 400); the other one's is not (404).
	if code := postTo(t, hookURL, WEpayoutWebhookPath, nil, []byte(`{}`)); code != http.StatusBadRequest {
		t.Errorf("POST %s with WEpayout enabled: %d, want 400", WEpayoutWebhookPath, code)
	}
	if code := postTo(t, hookURL, SmartFastPayWebhookPath, nil, []byte(`{}`)); code != http.StatusNotFound {
		t.Errorf("POST %s with SmartFastPay not enabled: %d, want 404", SmartFastPayWebhookPath, code)
	}

	c := f.submit(false, f.payee("1234567890")) // no hand-off: the handler asks Wompi
	f.sim.SettleAll()
	f.sim.SetFaults(wompitest.Faults{Latency: 400 * time.Millisecond})
	tx := c.txs[0]
	body, sum := txWebhook(t, cfg.EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "APPROVED", nil, t0)
	codes := make(chan int, 1)
	armed.Store(true)
	go func() { // not post: its t.Fatal here would leave codes empty and the test hung
		req, _ := http.NewRequest(http.MethodPost, hookURL+WebhookPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(wompi.HeaderEventChecksum, sum)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Logf("in-flight webhook: %v", err)
			codes <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes <- resp.StatusCode
	}()
	select { // the webhook is in flight, waiting on Wompi
	case <-asked:
	case code := <-codes:
		t.Fatalf("webhook answered %d before it asked Wompi", code)
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook never asked Wompi")
	}
	cancel()
	if code := <-codes; code != 200 {
		t.Fatalf("in-flight webhook during the drain: %d", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	evs := f.statusEvents()
	if len(evs) != 1 || evs[0].Status != payout.StatusApproved || evs[0].RequestID != tx.Reference {
		t.Fatalf("events: %+v", evs)
	}
	if _, err := http.Get(hookURL + "/webhooks/wompi"); err == nil {
		t.Fatal("webhook listener still accepting after Run returned")
	}
}

func get(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// /readyz of the tracker follows Kafka: a tracker that cannot produce must
// not take webhooks (each would end in a 503). Ready with Kafka up, 503
// naming kafka once it goes down, 200 again when it comes back on the same
// address.
func TestReadyzFollowsKafka(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	port := mustFreePort(t)
	k := startKafkaAt(t, port, f.topics.Status, f.topics.BatchStatus)
	cfg := f.sim.Config()
	envs := map[string]string{
		"KAFKA_BROKERS": "127.0.0.1:" + itoa(port), "REDIS_URL": f.redis.URL(), "REDIS_PREFIX": f.prefix,
		"WOMPI_BASE_URL": f.sim.BaseURL(), "WOMPI_API_KEY": cfg.APIKey, "WOMPI_PRINCIPAL_ID": cfg.PrincipalID,
		"WOMPI_EVENTS_SECRET": cfg.EventsSecret, "TOPIC_STATUS": f.topics.Status, "TOPIC_BATCH_STATUS": f.topics.BatchStatus,
		"TRACKER_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "POLL_INTERVAL": "1h",
	}
	set := config.New("tracker", func(k string) (string, bool) { v, ok := envs[k]; return v, ok })
	st := BindConfig(set)
	if err := set.Parse(nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx, testLogger(t), func(_, m net.Addr) { addrs <- m }) }()
	var readyz string
	select {
	case a := <-addrs:
		readyz = "http://" + a.String() + "/readyz"
	case err := <-done:
		t.Fatal(err)
	}
	until := func(what string, ok func(code int, body string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := getBody(readyz)
			if ok(code, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz = %d %q", what, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until("ready with Kafka up", func(code int, _ string) bool { return code == 200 })
	k.Close()
	until("not ready with Kafka down", func(code int, body string) bool {
		return code == 503 && strings.HasPrefix(body, "not ready: kafka: ")
	})
	startKafkaAt(t, port, f.topics.Status, f.topics.BatchStatus)
	until("ready with Kafka back", func(code int, _ string) bool { return code == 200 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A missing status topic stops the tracker at start with one line naming
// the topic and TOPIC_BATCH_STATUS, before it listens for webhooks.
func TestRunRefusesAMissingTopic(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	port := mustFreePort(t)
	startKafkaAt(t, port, f.topics.Status) // no batch-status topic
	cfg := f.sim.Config()
	envs := map[string]string{
		"KAFKA_BROKERS": "127.0.0.1:" + itoa(port), "REDIS_URL": f.redis.URL(), "REDIS_PREFIX": f.prefix,
		"WOMPI_BASE_URL": f.sim.BaseURL(), "WOMPI_API_KEY": cfg.APIKey, "WOMPI_PRINCIPAL_ID": cfg.PrincipalID,
		"WOMPI_EVENTS_SECRET": cfg.EventsSecret, "TOPIC_STATUS": f.topics.Status, "TOPIC_BATCH_STATUS": "missing.batch-status.v1",
		"TRACKER_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
	}
	set := config.New("tracker", func(k string) (string, bool) { v, ok := envs[k]; return v, ok })
	st := BindConfig(set)
	if err := set.Parse(nil); err != nil {
		t.Fatal(err)
	}
	st.TopicWait = 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := st.Run(ctx, testLogger(t), func(_, _ net.Addr) { t.Error("tracker listened with a topic missing") })
	want := "topic missing.batch-status.v1 (TOPIC_BATCH_STATUS) does not exist on KAFKA_BROKERS=127.0.0.1:" + itoa(port)
	if err == nil || err.Error() != want {
		t.Fatalf("Run = %v, want %q", err, want)
	}
}

func getBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// STATUS_CONFIRM_KEYS is on unless set false (the first step of a rolling
// upgrade from a version without confirmation keys).
func TestStatusConfirmKeysSetting(t *testing.T) {
	for env, want := range map[string]bool{"": true, "false": false, "true": true} {
		envs := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1", "WOMPI_API_KEY": "k",
			"WOMPI_PRINCIPAL_ID": "p", "WOMPI_EVENTS_SECRET": "s"}
		if env != "" {
			envs["STATUS_CONFIRM_KEYS"] = env
		}
		set := config.New("tracker", func(k string) (string, bool) { v, ok := envs[k]; return v, ok })
		st := BindConfig(set)
		if err := set.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if st.StatusConfirmKeys != want {
			t.Errorf("STATUS_CONFIRM_KEYS=%q: %v, want %v", env, st.StatusConfirmKeys, want)
		}
	}
}

// REDIS_PREFIX is the dispatcher's too (the status gate's keys): the
// tracker refuses what the dispatcher refuses, naming the variable, rather
// than running on keys no dispatcher writes.
func TestRedisPrefixRefusedAsTheDispatcherRefusesIt(t *testing.T) {
	for _, prefix := range []string{"pay{outs}:", "{x"} {
		envs := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1", "WOMPI_API_KEY": "k",
			"WOMPI_PRINCIPAL_ID": "p", "WOMPI_EVENTS_SECRET": "s", "REDIS_PREFIX": prefix}
		set := config.New("tracker", func(k string) (string, bool) { v, ok := envs[k]; return v, ok })
		BindConfig(set)
		err := set.Parse(nil)
		if err == nil || !strings.Contains(err.Error(), "REDIS_PREFIX") {
			t.Errorf("REDIS_PREFIX=%q: %v, want an error naming REDIS_PREFIX", prefix, err)
		}
	}
}

// TRACKER_ADDR or METRICS_ADDR set but empty (a template whose value did
// not render): the listener took a random free port, so the providers'
// webhooks were refused at the real one while /readyz (on a port of its
// own) answered ready. An empty address stops the tracker, naming it.
func TestEmptyListenAddressRefused(t *testing.T) {
	for _, name := range []string{"TRACKER_ADDR", "METRICS_ADDR"} {
		envs := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1", "WOMPI_API_KEY": "k",
			"WOMPI_PRINCIPAL_ID": "p", "WOMPI_EVENTS_SECRET": "s", name: ""}
		set := config.New("tracker", func(k string) (string, bool) { v, ok := envs[k]; return v, ok })
		BindConfig(set)
		var ce *config.Error
		if err := set.Parse(nil); !errors.As(err, &ce) || ce.Env != name {
			t.Errorf("%s=\"\": %v, want an error naming %s", name, err, name)
		}
	}
}
