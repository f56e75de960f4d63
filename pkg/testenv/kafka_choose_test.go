package testenv

import (
	"flag"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/testenv/apachekafka"
)

func TestKafkaChoice(t *testing.T) {
	const brokers = "10.0.0.1:9092"
	tests := []struct {
		name    string
		env     map[string]string
		docker  bool
		kfake   bool // WithKFake
		want    KafkaKind
		wantErr string
	}{
		{name: "default without docker is kfake", want: KafkaFake},
		{name: "default with docker is redpanda", docker: true, want: KafkaRedpanda},
		{name: "TEST_KAFKA=real", env: map[string]string{"TEST_KAFKA": "real"}, docker: true, want: KafkaReal},
		{name: "TEST_KAFKA=kfake beats docker", env: map[string]string{"TEST_KAFKA": "kfake"}, docker: true, want: KafkaFake},
		{name: "TEST_KAFKA=redpanda", env: map[string]string{"TEST_KAFKA": " Redpanda "}, docker: true, want: KafkaRedpanda},
		{name: "TEST_KAFKA=redpanda without docker", env: map[string]string{"TEST_KAFKA": "redpanda"}, wantErr: "no healthy Docker"},
		{name: "TEST_KAFKA unknown", env: map[string]string{"TEST_KAFKA": "zookeeper"}, wantErr: "want real, kfake or redpanda"},
		{name: "require means real", env: map[string]string{"TEST_REQUIRE_REAL_KAFKA": "1"}, docker: true, want: KafkaReal},
		{name: "require true", env: map[string]string{"TEST_REQUIRE_REAL_KAFKA": "true", "TEST_KAFKA": "real"}, want: KafkaReal},
		{name: "require contradicts kfake", env: map[string]string{"TEST_REQUIRE_REAL_KAFKA": "1", "TEST_KAFKA": "kfake"}, wantErr: "contradicts"},
		{name: "require 0 is off", env: map[string]string{"TEST_REQUIRE_REAL_KAFKA": "0"}, want: KafkaFake},
		{name: "KAFKA_BROKERS wins", env: map[string]string{"KAFKA_BROKERS": brokers, "TEST_KAFKA": "real"}, want: KafkaExternal},
		{name: "KAFKA_BROKERS satisfies require", env: map[string]string{"KAFKA_BROKERS": brokers, "TEST_REQUIRE_REAL_KAFKA": "1"}, want: KafkaExternal},
		{name: "WithKFake beats everything", env: map[string]string{"KAFKA_BROKERS": brokers, "TEST_REQUIRE_REAL_KAFKA": "1", "TEST_KAFKA": "real"}, docker: true, kfake: true, want: KafkaFake},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := kafkaEnv{getenv: func(k string) string { return tc.env[k] }, docker: func() bool { return tc.docker }}
			got, err := e.choose(kafkaConfig{kfakeOnly: tc.kfake})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("choose = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("choose = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// With real Kafka required and no Java, the test fails with one line that
// says why; it never falls back to kfake.
func TestRealKafkaWithoutJavaFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("JAVA_HOME", "")
	t.Setenv(EnvRequireRealKafka, "1")
	saved := shared.realKafka
	shared.realKafka = &sharedOnce[*apachekafka.Cluster]{}
	defer func() { shared.realKafka = saved }()

	r := &recorder{TB: t}
	if c := sharedRealKafka(r); c != nil {
		t.Fatalf("got a cluster without Java: %v", c.Brokers())
	}
	if r.skip != "" {
		t.Fatalf("skipped instead of failing: %q", r.skip)
	}
	if strings.Count(r.fatal, "\n") != 0 || !strings.Contains(r.fatal, "no java") || !strings.Contains(r.fatal, EnvRequireRealKafka) {
		t.Fatalf("failure line does not explain itself: %q", r.fatal)
	}
	t.Logf("the line: %s", r.fatal)
}

// A private real cluster starts JVMs, so it is skipped unless asked for.
func TestRealKafkaSkipsUnlessAsked(t *testing.T) {
	t.Setenv(EnvTestKafka, "")
	t.Setenv(EnvRequireRealKafka, "")
	r := &recorder{TB: t}
	if c := RealKafka(r, 3); c != nil || r.skip == "" || r.fatal != "" {
		t.Fatalf("RealKafka without TEST_KAFKA=real: cluster %v, skip %q, fatal %q", c, r.skip, r.fatal)
	}
	if !strings.Contains(r.skip, "TEST_KAFKA=real") {
		t.Errorf("skip does not say how to run it: %q", r.skip)
	}
}

// A fuzzing process gets kfake even when real Kafka is asked for: every
// fuzz worker would otherwise start its own JVM broker.
func TestFuzzingGetsKFake(t *testing.T) {
	t.Setenv(EnvTestKafka, "real")
	t.Setenv("KAFKA_BROKERS", "")
	fw := flag.Lookup("test.fuzzworker")
	if fw == nil {
		t.Skip("no test.fuzzworker flag in this Go version")
	}
	old := fw.Value.String()
	if err := flag.Set("test.fuzzworker", "true"); err != nil {
		t.Fatal(err)
	}
	defer flag.Set("test.fuzzworker", old) //nolint:errcheck
	if c := Kafka(t); c.Kind() != KafkaFake {
		t.Fatalf("a fuzz worker got %s, want kfake", c.Kind())
	}
}
