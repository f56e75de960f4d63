package main

import (
	"bytes"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var base = map[string]string{
	"KAFKA_BROKERS": "127.0.0.1:9092", "REDIS_URL": "redis://127.0.0.1:6379/0",
	"WOMPI_API_KEY": "k", "WOMPI_PRINCIPAL_ID": "p", "WOMPI_EVENTS_SECRET": "s",
}

func with(kv ...string) map[string]string {
	m := map[string]string{}
	for a, b := range base {
		m[a] = b
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, v := kv[i], kv[i+1]; v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, env(nil), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, v := range []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "REDIS_URL", "REDIS_PREFIX", "WOMPI_BASE_URL",
		"WOMPI_API_KEY", "WOMPI_PRINCIPAL_ID", "WOMPI_EVENTS_SECRET", "TOPIC_STATUS", "TOPIC_BATCH_STATUS",
		"TRACKER_ADDR", "METRICS_ADDR", "POLL_INTERVAL", "LOG_LEVEL", "LOG_FORMAT", "KAFKA_SASL_PASSWORD"} {
		if !strings.Contains(out.String(), "$"+v+" ") {
			t.Errorf("--help does not list %s", v)
		}
	}
}

func TestBadSettingNamesTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		name string
	}{
		{with("REDIS_URL", ""), "REDIS_URL"},
		{with("REDIS_URL", "ftp://x"), "REDIS_URL"},
		{with("WOMPI_EVENTS_SECRET", ""), "WOMPI_EVENTS_SECRET"},
		{with("POLL_INTERVAL", "soon"), "POLL_INTERVAL"},
		{with("POLL_INTERVAL", "-1s"), "POLL_INTERVAL"},
		{with("TRACKER_ADDR", "nonsense"), "TRACKER_ADDR"},
		{with("WOMPI_BASE_URL", "not a url"), "WOMPI_BASE_URL"},
		{with("TOPIC_STATUS", "bad topic!"), "TOPIC_STATUS"},
		// Rails: half-set credentials, and an enabled SmartFastPay without
		// the secret its callbacks are verified with.
		{with("SMARTFASTPAY_CLIENT_ID", "s"), "SMARTFASTPAY_CLIENT_SECRET"},
		{with("SMARTFASTPAY_CLIENT_ID", "s", "SMARTFASTPAY_CLIENT_SECRET", "s"), "SMARTFASTPAY_WEBHOOK_SECRET"},
		{with("WEPAYOUT_MERCHANT_ID", "12"), "WEPAYOUT_MERCHANT_ID"},
	} {
		var out bytes.Buffer
		if code := run(nil, env(tc.env), &out); code != 2 {
			t.Errorf("%s: exit %d, want 2", tc.name, code)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.name) {
			t.Errorf("%s: output %q", tc.name, out.String())
		}
		if strings.Contains(out.String(), "=s") || strings.Contains(out.String(), `"s"`) {
			t.Errorf("%s: a secret leaked: %q", tc.name, out.String())
		}
	}
}
