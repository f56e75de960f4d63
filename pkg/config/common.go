package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/ops"
)

// Common holds the settings every worker shares: Kafka, topics, the schema
// registry, the metrics listener and logging.
type Common struct {
	Kafka             events.KafkaConfig
	Topics            events.Topics
	SchemaRegistryURL string
	MetricsAddr       string
	LogLevel          string
	LogFormat         string
}

// BindCommon binds the shared settings on s: KAFKA_BROKERS and the Kafka
// TLS/SASL variables, every TOPIC_* override, SCHEMA_REGISTRY_URL,
// METRICS_ADDR, LOG_LEVEL and LOG_FORMAT. clientID names the worker to the
// brokers.
func BindCommon(s *Set, c *Common, clientID string) {
	c.Kafka.ClientID = clientID
	s.List(&c.Kafka.Brokers, "kafka-brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "Kafka seed brokers, comma-separated host:port").Required().
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_BROKERS") })
	s.Bool(&c.Kafka.TLS, "kafka-tls", "KAFKA_TLS", false, "dial Kafka with TLS (system roots unless KAFKA_TLS_CA_FILE)")
	s.String(&c.Kafka.TLSCAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "", "PEM CA bundle for Kafka TLS").
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_TLS_CA_FILE") })
	s.String(&c.Kafka.TLSCertFile, "kafka-tls-cert-file", "KAFKA_TLS_CERT_FILE", "", "PEM client certificate for Kafka mTLS").
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_TLS_CERT_FILE") })
	s.String(&c.Kafka.TLSKeyFile, "kafka-tls-key-file", "KAFKA_TLS_KEY_FILE", "", "PEM client key for Kafka mTLS").
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_TLS_KEY_FILE") })
	s.String(&c.Kafka.SASLMechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512").
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_SASL_MECHANISM") })
	s.String(&c.Kafka.SASLUser, "kafka-sasl-username", "KAFKA_SASL_USERNAME", "", "SASL user name").
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_SASL_USERNAME") })
	s.Secret(&c.Kafka.SASLPassword, "kafka-sasl-password", "KAFKA_SASL_PASSWORD", "SASL password").
		Check(func() error { return kafkaErr(c.Kafka, "KAFKA_SASL_PASSWORD") })
	s.Duration(&c.Kafka.SessionTimeout, "kafka-session-timeout", "KAFKA_SESSION_TIMEOUT", 45*time.Second,
		"consumer-group session timeout: how long a dead member keeps its partitions").
		Check(func() error {
			if c.Kafka.SessionTimeout < time.Second || c.Kafka.SessionTimeout > 5*time.Minute {
				return fmt.Errorf("must be 1s-5m, got %v", c.Kafka.SessionTimeout)
			}
			return nil
		})
	s.Duration(&c.Kafka.RebalanceTimeout, "kafka-rebalance-timeout", "KAFKA_REBALANCE_TIMEOUT", 60*time.Second,
		"how long a group rebalance waits for members to rejoin").
		Check(func() error {
			if c.Kafka.RebalanceTimeout < time.Second || c.Kafka.RebalanceTimeout > 10*time.Minute {
				return fmt.Errorf("must be 1s-10m, got %v", c.Kafka.RebalanceTimeout)
			}
			return nil
		})
	for _, b := range c.Topics.Bindings() {
		field := b.Field
		name := strings.ToLower(strings.ReplaceAll(b.Env, "_", "-"))
		env := b.Env
		s.String(field, name, env, b.Default, "topic name").Check(func() error {
			if err := events.ValidateTopicName(*field); err != nil {
				return errors.New(firstLine(err))
			}
			return nil
		})
	}
	s.String(&c.SchemaRegistryURL, "schema-registry-url", "SCHEMA_REGISTRY_URL", "", "Confluent Schema Registry URL; empty: Avro single-object encoding")
	s.String(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", ":9090", "listen address of /metrics, /healthz and /readyz").
		Check(func() error { return CheckAddr(c.MetricsAddr) })
	s.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	s.String(&c.LogFormat, "log-format", "LOG_FORMAT", "json", "json or text")
}

// kafkaErr reports the Kafka validation error that names env, if any.
func kafkaErr(k events.KafkaConfig, env string) error {
	err := k.Validate()
	if err == nil {
		return nil
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(line, env+":") || strings.HasPrefix(line, env+" ") {
			return errors.New(strings.TrimSpace(strings.TrimPrefix(line, env+":")))
		}
	}
	return nil
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Worker returns the scaffold (ops.Worker) that serves a consumer-group
// worker's /metrics, /healthz and /readyz on METRICS_ADDR and exports its
// group's lag, from the shared settings.
func (c *Common) Worker(reg *prometheus.Registry, group string, ready func() bool, logger *slog.Logger, started func(net.Addr)) ops.Worker {
	// The worker's engine has built options from the same settings, so this
	// cannot fail; if it did, the lag would only go unexported.
	lagKafka, _ := c.Kafka.Opts(prometheus.NewRegistry(), "lag")
	return ops.Worker{MetricsAddr: c.MetricsAddr, Registry: reg, Ready: ready, Group: group, LagKafka: lagKafka,
		Logger: logger, Started: started}
}
