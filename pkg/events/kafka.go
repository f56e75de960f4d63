package events

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kprom"
)

// SASL mechanisms KafkaConfig accepts.
const (
	SASLNone        = ""
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaConfig is the connection part of every worker's Kafka client. The
// config package fills it from KAFKA_BROKERS, KAFKA_CLIENT_ID, KAFKA_TLS,
// KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE,
// KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD. The
// password never appears in String, GoString, LogValue or any error.
type KafkaConfig struct {
	Brokers       []string // host:port seeds; required
	ClientID      string   // optional; franz-go's default when empty
	TLS           bool     // dial with TLS (system roots unless TLSCAFile)
	TLSCAFile     string   // PEM CA bundle; implies TLS
	TLSCertFile   string   // PEM client certificate, with TLSKeyFile (mTLS); implies TLS
	TLSKeyFile    string   // PEM client key, with TLSCertFile
	SASLMechanism string   // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	SASLUser      string   // required with a mechanism
	SASLPassword  string   // required with a mechanism; secret
	// SessionTimeout is the consumer-group session timeout: how long a
	// member that died without leaving (SIGKILL, a lost node) keeps its
	// partitions before the group rebalances. 0: franz-go's 45 s.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for members to
	// rejoin; the client waits that plus 30 s for its join answer, so a
	// rebalance that a member's late join prolongs still completes. 0:
	// franz-go's 60 s.
	RebalanceTimeout time.Duration
}

// Validate checks the settings without touching the network or files. Each
// error names the environment variable to fix; all problems are joined.
func (k KafkaConfig) Validate() error {
	var errs []error
	if len(k.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS: at least one broker host:port is required"))
	}
	for _, b := range k.Brokers {
		host, port, err := net.SplitHostPort(strings.TrimSpace(b))
		if err != nil || host == "" {
			errs = append(errs, fmt.Errorf("KAFKA_BROKERS: %q is not host:port", b))
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("KAFKA_BROKERS: %q has a bad port", b))
		}
	}
	if (k.TLSCertFile == "") != (k.TLSKeyFile == "") {
		errs = append(errs, errors.New("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE must be set together"))
	}
	switch k.SASLMechanism {
	case SASLNone:
		if k.SASLUser != "" || k.SASLPassword != "" {
			errs = append(errs, errors.New("KAFKA_SASL_MECHANISM: required when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set"))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if k.SASLUser == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM=%s", k.SASLMechanism))
		}
		if k.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM=%s", k.SASLMechanism))
		}
		if !k.tlsOn() {
			// Allowed (SASL_PLAINTEXT exists), but PLAIN would send the
			// password in clear; refuse that one.
			if k.SASLMechanism == SASLPlain {
				errs = append(errs, errors.New("KAFKA_TLS: must be true with KAFKA_SASL_MECHANISM=PLAIN (the password would travel in clear)"))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", k.SASLMechanism))
	}
	return errors.Join(errs...)
}

func (k KafkaConfig) tlsOn() bool { return k.TLS || k.TLSCAFile != "" || k.TLSCertFile != "" }

// Opts validates k and returns the franz-go options for it: seed brokers,
// client id, the TLS dialer (reading the CA and key files now), the SASL
// mechanism, and kprom metrics registered on reg under namespace (reg nil:
// no metrics). Add role options (consumer group, transactional id, ...) after
// these. kprom registers its collectors when the client is created, so each
// client on one registry needs its own namespace (e.g. "ingest_consumer").
func (k KafkaConfig) Opts(reg prometheus.Registerer, namespace string) ([]kgo.Opt, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	brokers := make([]string, len(k.Brokers))
	for i, b := range k.Brokers {
		brokers[i] = strings.TrimSpace(b)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if k.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(k.SessionTimeout), kgo.HeartbeatInterval(max(k.SessionTimeout/10, 100*time.Millisecond)))
	}
	if k.RebalanceTimeout > 0 {
		opts = append(opts, kgo.RebalanceTimeout(k.RebalanceTimeout), kgo.RequestTimeoutOverhead(30*time.Second))
	}
	if k.ClientID != "" {
		opts = append(opts, kgo.ClientID(k.ClientID))
	}
	if k.tlsOn() {
		tc, err := k.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch k.SASLMechanism {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha512Mechanism()))
	}
	if reg != nil {
		m := kprom.NewMetrics(namespace, kprom.Registerer(gaugeNamesRegisterer{reg}))
		opts = append(opts, kgo.WithHooks(m))
	}
	return opts, nil
}

func (k KafkaConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.TLSCAFile != "" {
		pem, err := os.ReadFile(k.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %s holds no PEM certificate", k.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if k.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCertFile, k.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE/KAFKA_TLS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// String describes k with the password masked.
func (k KafkaConfig) String() string {
	pw := ""
	if k.SASLPassword != "" {
		pw = "***"
	}
	return fmt.Sprintf("KafkaConfig{Brokers:%v ClientID:%q TLS:%t TLSCAFile:%q TLSCertFile:%q TLSKeyFile:%q SASLMechanism:%q SASLUser:%q SASLPassword:%q}",
		k.Brokers, k.ClientID, k.tlsOn(), k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile, k.SASLMechanism, k.SASLUser, pw)
}

// GoString is String, so %#v masks the password too.
func (k KafkaConfig) GoString() string { return k.String() }

// LogValue masks the password in slog output.
func (k KafkaConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("brokers", k.Brokers),
		slog.String("client_id", k.ClientID),
		slog.Bool("tls", k.tlsOn()),
		slog.String("sasl_mechanism", k.SASLMechanism),
		slog.String("sasl_user", k.SASLUser),
		slog.Bool("sasl_password_set", k.SASLPassword != ""),
	)
}

// HasHooks reports whether cl was given hooks (kgo.WithHooks), such as
// kprom's: a second client built from the same options would register
// kprom's collectors again, and panic. The option's value is a slice of an
// unexported type.
func HasHooks(cl *kgo.Client) bool {
	for _, v := range cl.OptValues(kgo.WithHooks) {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() > 0 {
			return true
		}
	}
	return false
}
