package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/events"
)

// parse parses env; REDIS_URL has a value unless env names it.
func parse(t *testing.T, env map[string]string, hostname func() (string, error)) (*Settings, error) {
	t.Helper()
	set := config.New("ingest", func(k string) (string, bool) {
		v, ok := env[k]
		if !ok && k == "REDIS_URL" {
			return "redis://127.0.0.1:6379/0", true
		}
		return v, ok
	})
	st := bindConfig(set, hostname)
	return st, set.Parse(nil)
}

// Issue 15 item 6: the old BindConfig ignored os.Hostname's error, so every
// instance on such a host defaulted to the transactional id
// "payouts-ingest-" and fenced the others. With no host name and no
// INGEST_TRANSACTIONAL_ID the worker now refuses to start, with one line
// naming the variable.
func TestTransactionalIDNeedsAHostName(t *testing.T) {
	for name, hostname := range map[string]func() (string, error){
		"error": func() (string, error) { return "", errors.New("uname failed") },
		"empty": func() (string, error) { return "  ", nil },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, nil, hostname)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Env != "INGEST_TRANSACTIONAL_ID" {
				t.Fatalf("Parse = %v, want an error naming INGEST_TRANSACTIONAL_ID", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "required") {
				t.Fatalf("error %q is not one clear line", msg)
			}
			st, err := parse(t, map[string]string{"INGEST_TRANSACTIONAL_ID": "ingest-0"}, hostname)
			if err != nil || st.TransactionalID != "ingest-0" {
				t.Fatalf("explicit id: %v %q", err, st.TransactionalID)
			}
		})
	}
	st, err := parse(t, nil, func() (string, error) { return "node-7", nil })
	if err != nil || st.TransactionalID != "payouts-ingest-node-7" {
		t.Fatalf("default id: %v %q", err, st.TransactionalID)
	}
}

func TestBatchMaxBytesAndNotFoundRetrySettings(t *testing.T) {
	host := func() (string, error) { return "h", nil }
	st, err := parse(t, nil, host)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxBatchBytes != DefaultMaxBatchBytes || st.SchemaNotFoundRetry != events.DefaultNotFoundRetry {
		t.Fatalf("defaults: BATCH_MAX_BYTES %d, SCHEMA_REGISTRY_NOT_FOUND_RETRY %v", st.MaxBatchBytes, st.SchemaNotFoundRetry)
	}
	for _, tc := range []struct {
		env, val string
		ok       bool
	}{
		{"BATCH_MAX_BYTES", "4096", true},
		{"BATCH_MAX_BYTES", "999500", true},
		{"BATCH_MAX_BYTES", "999501", false}, // no room for the record's framing under the producer's cap
		{"BATCH_MAX_BYTES", "1048576", false},
		{"BATCH_MAX_BYTES", "4095", false},
		{"SCHEMA_REGISTRY_NOT_FOUND_RETRY", "0s", true},
		{"SCHEMA_REGISTRY_NOT_FOUND_RETRY", "-1s", false},
		{"SCHEMA_REGISTRY_NOT_FOUND_RETRY", "2h", false},
	} {
		_, err := parse(t, map[string]string{tc.env: tc.val}, host)
		var ce *config.Error
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ce) || ce.Env != tc.env)) {
			t.Errorf("%s=%s: err = %v, want ok=%v", tc.env, tc.val, err, tc.ok)
		}
	}
}

// The seen index needs Redis: REDIS_URL is required (either form), and
// REDIS_PREFIX and DEDUPE_WINDOW keep the dispatcher's names and defaults.
func TestSeenIndexSettings(t *testing.T) {
	host := func() (string, error) { return "h", nil }
	st, err := parse(t, nil, host)
	if err != nil {
		t.Fatal(err)
	}
	if st.RedisPrefix != "payouts:" || st.DedupeWindow != 720*time.Hour {
		t.Fatalf("defaults: REDIS_PREFIX %q, DEDUPE_WINDOW %v", st.RedisPrefix, st.DedupeWindow)
	}
	for _, tc := range []struct {
		env, val string
		ok       bool
	}{
		{"REDIS_URL", "", false},
		{"REDIS_URL", "http://redis:6379", false},
		{"REDIS_URL", "redis://a:7000?addr=b:7000&addr=c:7000", true},
		{"REDIS_PREFIX", "p{x}:", false},
		{"REDIS_PREFIX", "", false},
		{"DEDUPE_WINDOW", "0s", false},
		{"DEDUPE_WINDOW", "-1h", false},
		// Shorter than a window and its transaction (BATCH_MAX_WINDOW
		// 2m, then 2m + 1m).
		{"DEDUPE_WINDOW", "2m59s", false},
		{"DEDUPE_WINDOW", "5m", true},
		{"DEDUPE_WINDOW", "24h", true},
	} {
		_, err := parse(t, map[string]string{tc.env: tc.val}, host)
		var ce *config.Error
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ce) || ce.Env != tc.env)) {
			t.Errorf("%s=%q: err = %v, want ok=%v", tc.env, tc.val, err, tc.ok)
		}
	}
}

// A route to a rail that cannot pay its currency (BRL=wompi, COP=wepayout,
// USD=smartfastpay) would REJECTED, final, every request of that currency
// with INVALID_CURRENCY: the worker refuses to start instead, naming
// RAIL_ROUTES.
func TestRailRoutesToARailOfAnotherCurrencyRefused(t *testing.T) {
	host := func() (string, error) { return "h", nil }
	for _, tc := range []struct {
		val string
		ok  bool
	}{
		{"COP=wompi,BRL=wepayout", true},
		{"COP=smartfastpay", true},
		{"BRL=wompi", false},
		{"COP=wompi,BRL=smartfastpay", false},
		{"COP=wepayout,BRL=wompi", false},
		{"USD=wompi", false},
	} {
		_, err := parse(t, map[string]string{"RAIL_ROUTES": tc.val}, host)
		var ce *config.Error
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ce) || ce.Env != "RAIL_ROUTES" || strings.Contains(err.Error(), "\n"))) {
			t.Errorf("RAIL_ROUTES=%s: err = %v, want ok=%v", tc.val, err, tc.ok)
		}
	}
}
