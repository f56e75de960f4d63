package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

type settings struct {
	brokers []string
	n       int
	amount  int64
	wait    time.Duration
	tls     bool
	rate    float64
	key     string
	addr    string
}

func bindAll(s *Set, c *settings) {
	s.List(&c.brokers, "kafka-brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "brokers").Required()
	s.Int(&c.n, "batch-max", "BATCH_MAX_TRANSACTIONS", 1000, "max").Check(func() error { return CheckPositive(c.n) })
	s.Int64(&c.amount, "batch-max-amount", "BATCH_MAX_AMOUNT_CENTS", 5, "amount")
	s.Duration(&c.wait, "batch-max-wait", "BATCH_MAX_WAIT", time.Second, "wait")
	s.Bool(&c.tls, "kafka-tls", "KAFKA_TLS", false, "tls")
	s.Float64(&c.rate, "rate", "WOMPI_RATE", 10, "rate")
	s.Secret(&c.key, "wompi-api-key", "WOMPI_API_KEY", "key").Required()
	s.String(&c.addr, "metrics-addr", "METRICS_ADDR", ":9090", "addr").Check(func() error { return CheckAddr(c.addr) })
}

func TestParsePrecedenceAndDefaults(t *testing.T) {
	var c settings
	s := New("t", env(map[string]string{"KAFKA_BROKERS": "a:1, b:2,", "BATCH_MAX_WAIT": "250ms", "WOMPI_API_KEY": "k", "KAFKA_TLS": "false"}))
	bindAll(s, &c)
	if err := s.Parse([]string{"--batch-max", "7", "--kafka-tls", "--kafka-brokers=c:3"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.brokers, "|") != "c:3" || c.n != 7 || c.wait != 250*time.Millisecond || !c.tls || c.amount != 5 || c.rate != 10 || c.key != "k" || c.addr != ":9090" {
		t.Fatalf("got %+v", c)
	}
}

func TestSecretFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c settings
	s := New("t", env(map[string]string{"WOMPI_API_KEY_FILE": p}))
	bindAll(s, &c)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c.key != "from-file" {
		t.Fatalf("key = %q", c.key)
	}
}

// TestSecretAndFileBothSet: VAR and VAR_FILE together are refused, even
// when VAR is empty (a template's leftover would otherwise hide the file),
// and the error never carries either value; a flag still wins over both.
func TestSecretAndFileBothSet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("file-topsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, val := range []string{"env-topsecret", ""} {
		var c settings
		s := New("t", env(map[string]string{"WOMPI_API_KEY": val, "WOMPI_API_KEY_FILE": p}))
		bindAll(s, &c)
		err := s.Parse(nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Env != "WOMPI_API_KEY" || !strings.Contains(err.Error(), "WOMPI_API_KEY_FILE") {
			t.Fatalf("WOMPI_API_KEY=%q and WOMPI_API_KEY_FILE: err = %v, want one naming both", val, err)
		}
		if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), p) {
			t.Fatalf("error leaks a value: %v", err)
		}
	}
	var c settings
	s := New("t", env(map[string]string{"WOMPI_API_KEY": "env", "WOMPI_API_KEY_FILE": p}))
	bindAll(s, &c)
	if err := s.Parse([]string{"--wompi-api-key", "flag"}); err != nil || c.key != "flag" {
		t.Fatalf("flag with VAR and VAR_FILE: key %q, err %v; want the flag to win", c.key, err)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"WOMPI_API_KEY": "k", "BATCH_MAX_TRANSACTIONS": "many"}, "BATCH_MAX_TRANSACTIONS"},
		{map[string]string{"WOMPI_API_KEY": "k", "BATCH_MAX_TRANSACTIONS": "0"}, "BATCH_MAX_TRANSACTIONS"},
		{map[string]string{"WOMPI_API_KEY": "k", "BATCH_MAX_WAIT": "soon"}, "BATCH_MAX_WAIT"},
		{map[string]string{"WOMPI_API_KEY": "k", "KAFKA_TLS": "maybe"}, "KAFKA_TLS"},
		{map[string]string{"WOMPI_API_KEY": "k", "KAFKA_BROKERS": " "}, "KAFKA_BROKERS"},
		{map[string]string{"WOMPI_API_KEY": "k", "METRICS_ADDR": "nowhere"}, "METRICS_ADDR"},
		{map[string]string{"WOMPI_API_KEY": "k", "WOMPI_RATE": "x"}, "WOMPI_RATE"},
		{map[string]string{}, "WOMPI_API_KEY"},
		{map[string]string{"WOMPI_API_KEY_FILE": "/nonexistent/secret"}, "WOMPI_API_KEY"},
	}
	for _, tc := range cases {
		var c settings
		s := New("t", env(tc.env))
		bindAll(s, &c)
		err := s.Parse(nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Env != tc.want {
			t.Fatalf("env %v: err = %v, want one naming %s", tc.env, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("error is not one line: %q", err)
		}
	}
}

func TestSecretValueNeverInErrorOrUsage(t *testing.T) {
	var key string
	s := New("t", env(map[string]string{"WOMPI_API_KEY": "sk_live_topsecret"}))
	s.Secret(&key, "wompi-api-key", "WOMPI_API_KEY", "key").Check(func() error { return errors.New("too short") })
	err := s.Parse(nil)
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("err = %v", err)
	}
	var buf bytes.Buffer
	s.SetOutput(&buf)
	s.PrintUsage()
	if strings.Contains(buf.String(), "topsecret") || !strings.Contains(buf.String(), "WOMPI_API_KEY_FILE") {
		t.Fatalf("usage: %s", buf.String())
	}
}

func TestHelpListsEveryFlagAndEnv(t *testing.T) {
	var c settings
	s := New("t", env(nil))
	var buf bytes.Buffer
	s.SetOutput(&buf)
	bindAll(s, &c)
	if err := s.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, v := range s.Vars() {
		if !strings.Contains(buf.String(), "$"+v) {
			t.Errorf("usage lacks %s", v)
		}
	}
	if len(s.Vars()) != 8 {
		t.Fatalf("Vars = %v", s.Vars())
	}
}

func FuzzParse(f *testing.F) {
	f.Add("1000", "1s", "a:1,b:2", "true")
	f.Add("-1", "x", "", "maybe")
	f.Fuzz(func(t *testing.T, n, wait, brokers, tls string) {
		var c settings
		s := New("t", env(map[string]string{"BATCH_MAX_TRANSACTIONS": n, "BATCH_MAX_WAIT": wait, "KAFKA_BROKERS": brokers, "KAFKA_TLS": tls, "WOMPI_API_KEY": "k"}))
		bindAll(s, &c)
		if err := s.Parse(nil); err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Env == "" {
				t.Fatalf("error without a variable: %v", err)
			}
			return
		}
		if c.n <= 0 || len(c.brokers) == 0 {
			t.Fatalf("accepted invalid config %+v", c)
		}
	})
}

func TestBindCommon(t *testing.T) {
	var c Common
	s := New("w", env(map[string]string{"KAFKA_BROKERS": "k1:9092,k2:9092", "TOPIC_STATUS": "my.status", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p", "KAFKA_TLS": "true"}))
	BindCommon(s, &c, "w")
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if len(c.Kafka.Brokers) != 2 || c.Topics.Status != "my.status" || c.Topics.Requests != "payouts.requests.v1" || c.MetricsAddr != ":9090" {
		t.Fatalf("got %+v", c)
	}
	for want, bad := range map[string]map[string]string{
		"KAFKA_BROKERS":        {"KAFKA_BROKERS": "nohostport"},
		"KAFKA_SASL_MECHANISM": {"KAFKA_SASL_MECHANISM": "GSSAPI"},
		"TOPIC_REQUESTS":       {"TOPIC_REQUESTS": "bad topic!"},
		"KAFKA_TLS_CERT_FILE":  {"KAFKA_TLS_CERT_FILE": "/c.pem"},
	} {
		var c Common
		s := New("w", env(bad))
		BindCommon(s, &c, "w")
		err := s.Parse(nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Env != want {
			t.Errorf("%v: err = %v, want one naming %s", bad, err, want)
		}
	}
}
