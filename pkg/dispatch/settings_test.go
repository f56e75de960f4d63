package dispatch

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The production wiring takes go-redis hooks (Settings.RedisHooks): the
// engine it builds runs its Redis calls, from the start-up PING on, through
// them. The local load run counts the dispatcher's round trips this way.
func TestSettingsEngineRunsRedisCallsThroughHooks(t *testing.T) {
	t.Parallel()
	st, err := parseSettings(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, second := &commandCounter{}, &commandCounter{}
	st.RedisHooks = append(st.RedisHooks, first, second)
	e, closeDeps, err := st.Engine(context.Background(), prometheus.NewRegistry(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer closeDeps()
	built := first.n.Load()
	if built == 0 || second.n.Load() != built {
		t.Fatalf("hooks saw %d and %d calls while Engine built, want the start-up PING (and the same count) in each", built, second.n.Load())
	}
	if err := e.cfg.Redis.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if first.n.Load() != built+1 || second.n.Load() != built+1 {
		t.Fatalf("hooks saw %d and %d calls, want %d each: the engine's client is not the hooked one", first.n.Load(), second.n.Load(), built+1)
	}
}

// parseSettings binds and parses the dispatcher's settings on a minimal
// environment (a real Redis, unreachable Kafka and Wompi) plus extra.
func parseSettings(t *testing.T, extra map[string]string) (*Settings, error) {
	t.Helper()
	rs := testenv.Redis(t)
	env := map[string]string{"REDIS_URL": rs.URL(), "KAFKA_BROKERS": "127.0.0.1:9", "WOMPI_BASE_URL": "http://127.0.0.1:9/v1",
		"WOMPI_API_KEY": "k", "WOMPI_PRINCIPAL_ID": "p", "REDIS_PREFIX": rs.Prefix()}
	for k, v := range extra {
		env[k] = v
	}
	set := config.New("dispatcher", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	st := BindConfig(set)
	return st, set.Parse(nil)
}

// DISPATCHER_RETRY_BASE and DISPATCHER_RETRY_MAX reach the engine (the
// local run retries faster than production); unset, the defaults hold; a
// cap below the base is refused.
func TestSettingsRetryBackoff(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		env       map[string]string
		base, max time.Duration
		err       string
	}{
		{"defaults", nil, DefaultRetryBase, DefaultRetryMax, ""},
		{"set", map[string]string{"DISPATCHER_RETRY_BASE": "100ms", "DISPATCHER_RETRY_MAX": "2s"}, 100 * time.Millisecond, 2 * time.Second, ""},
		{"cap below base", map[string]string{"DISPATCHER_RETRY_BASE": "3s", "DISPATCHER_RETRY_MAX": "2s"}, 0, 0, "DISPATCHER_RETRY_MAX"},
		{"zero base", map[string]string{"DISPATCHER_RETRY_BASE": "0s"}, 0, 0, "DISPATCHER_RETRY_BASE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseSettings(t, tc.env)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e, closeDeps, err := st.Engine(context.Background(), prometheus.NewRegistry(), testLogger())
			if err != nil {
				t.Fatal(err)
			}
			defer closeDeps()
			if e.cfg.RetryBase != tc.base || e.cfg.RetryMax != tc.max {
				t.Fatalf("engine retries %v..%v, want %v..%v", e.cfg.RetryBase, e.cfg.RetryMax, tc.base, tc.max)
			}
		})
	}
}

// DISPATCHER_RETIRED_RAILS reaches the engine; Wompi or an unknown rail is
// refused.
func TestSettingsRetiredRails(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, value string
		want        []rail.Name
		err         bool
	}{
		{"unset", "", nil, false},
		{"two", "smartfastpay, wepayout", []rail.Name{rail.SmartFastPay, rail.WEpayout}, false},
		{"wompi", "wompi", nil, true},
		{"a newer version's rail", "pix-br", []rail.Name{"pix-br"}, false},
		{"not a name", "Smart FastPay", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseSettings(t, map[string]string{"DISPATCHER_RETIRED_RAILS": tc.value})
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "DISPATCHER_RETIRED_RAILS") {
					t.Fatalf("err = %v, want one naming DISPATCHER_RETIRED_RAILS", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e, closeDeps, err := st.Engine(context.Background(), prometheus.NewRegistry(), testLogger())
			if err != nil {
				t.Fatal(err)
			}
			defer closeDeps()
			if !slices.Equal(e.cfg.RetiredRails, tc.want) || e.cfg.ReadKafka == nil {
				t.Fatalf("retired rails %v (read options %d), want %v", e.cfg.RetiredRails, len(e.cfg.ReadKafka), tc.want)
			}
		})
	}
}
