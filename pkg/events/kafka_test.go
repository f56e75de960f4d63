package events

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaConfigValidate(t *testing.T) {
	ok := KafkaConfig{Brokers: []string{"localhost:9092", "b2:9093"}}
	cases := []struct {
		name    string
		mutate  func(k *KafkaConfig)
		wantEnv string // "" = valid
	}{
		{"valid plaintext", func(*KafkaConfig) {}, ""},
		{"valid scram without tls", func(k *KafkaConfig) { k.SASLMechanism, k.SASLUser, k.SASLPassword = SASLScramSHA512, "u", "p" }, ""},
		{"valid plain with tls", func(k *KafkaConfig) { k.TLS, k.SASLMechanism, k.SASLUser, k.SASLPassword = true, SASLPlain, "u", "p" }, ""},
		{"missing brokers", func(k *KafkaConfig) { k.Brokers = nil }, "KAFKA_BROKERS"},
		{"broker without port", func(k *KafkaConfig) { k.Brokers = []string{"localhost"} }, "KAFKA_BROKERS"},
		{"broker bad port", func(k *KafkaConfig) { k.Brokers = []string{"localhost:99999"} }, "KAFKA_BROKERS"},
		{"bad sasl mechanism", func(k *KafkaConfig) { k.SASLMechanism, k.SASLUser, k.SASLPassword = "GSSAPI", "u", "p" }, "KAFKA_SASL_MECHANISM"},
		{"lowercase mechanism", func(k *KafkaConfig) { k.SASLMechanism = "plain" }, "KAFKA_SASL_MECHANISM"},
		{"user without mechanism", func(k *KafkaConfig) { k.SASLUser = "u" }, "KAFKA_SASL_MECHANISM"},
		{"missing user", func(k *KafkaConfig) { k.SASLMechanism, k.SASLPassword = SASLScramSHA256, "p" }, "KAFKA_SASL_USERNAME"},
		{"missing password", func(k *KafkaConfig) { k.SASLMechanism, k.SASLUser = SASLScramSHA256, "u" }, "KAFKA_SASL_PASSWORD"},
		{"plain without tls", func(k *KafkaConfig) { k.SASLMechanism, k.SASLUser, k.SASLPassword = SASLPlain, "u", "p" }, "KAFKA_TLS"},
		{"cert without key", func(k *KafkaConfig) { k.TLSCertFile = "c.pem" }, "KAFKA_TLS_KEY_FILE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := ok
			k.Brokers = append([]string(nil), ok.Brokers...)
			tc.mutate(&k)
			err := k.Validate()
			if tc.wantEnv == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantEnv) {
				t.Fatalf("err = %v, want one naming %s", err, tc.wantEnv)
			}
		})
	}
}

func TestKafkaConfigHidesPassword(t *testing.T) {
	k := KafkaConfig{Brokers: []string{"b:1"}, SASLMechanism: SASLPlain, SASLUser: "u", SASLPassword: "s3cr3t-pw"}
	for _, s := range []string{k.String(), fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%v", &k), k.LogValue().String()} {
		if strings.Contains(s, "s3cr3t-pw") {
			t.Fatalf("password leaked: %s", s)
		}
	}
	if err := k.Validate(); err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("validate: %v", err)
	}
}

func TestKafkaConfigOpts(t *testing.T) {
	reg := prometheus.NewRegistry()
	k := KafkaConfig{Brokers: []string{"127.0.0.1:1"}, ClientID: "ingest-test", SASLMechanism: SASLScramSHA256, SASLUser: "u", SASLPassword: "p"}
	opts, err := k.Opts(reg, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ClientID); got != "ingest-test" {
		t.Errorf("client id = %v", got)
	}
	if got := cl.OptValues(kgo.SeedBrokers); len(got) == 0 {
		t.Errorf("no seed brokers")
	}
	if got := cl.OptValues(kgo.SASL); len(got) != 1 {
		t.Errorf("SASL opt values = %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "ingest_") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no kprom metrics registered under the namespace")
	}

	// TLS files are read now and errors name the variable.
	bad := KafkaConfig{Brokers: []string{"b:1"}, TLSCAFile: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := bad.Opts(nil, "x"); err == nil || !strings.Contains(err.Error(), "KAFKA_TLS_CA_FILE") {
		t.Fatalf("missing CA file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad.TLSCAFile = notPEM
	if _, err := bad.Opts(nil, "x"); err == nil || !strings.Contains(err.Error(), "KAFKA_TLS_CA_FILE") {
		t.Fatalf("non-PEM CA file: %v", err)
	}
	invalid := KafkaConfig{}
	if _, err := invalid.Opts(nil, "x"); err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS") {
		t.Fatalf("Opts must validate: %v", err)
	}
}
