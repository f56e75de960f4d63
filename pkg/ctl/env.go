package ctl

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Tool holds the clients a command needs, built from the settings when
// first asked for. Close releases them.
type Tool struct {
	st  *Settings
	now func() time.Time

	rdb   redis.UniversalClient
	wc    *wompi.Client
	codec *events.Codec
}

// New returns a tool on the settings. now is the clock (time.Now in
// production).
func New(st *Settings, now func() time.Time) *Tool {
	if now == nil {
		now = time.Now
	}
	return &Tool{st: st, now: now}
}

// Close releases the clients.
func (t *Tool) Close() {
	if t.rdb != nil {
		_ = t.rdb.Close()
	}
}

func (t *Tool) mask() masker { return masker{reveal: t.st.Reveal} }

func (t *Tool) kafka() ([]kgo.Opt, error) {
	if len(t.st.Kafka.Brokers) == 0 {
		return nil, fmt.Errorf("config: KAFKA_BROKERS is required")
	}
	return t.st.Kafka.Opts(nil, "")
}

func (t *Tool) redis(ctx context.Context) (redis.UniversalClient, error) {
	if t.rdb != nil {
		return t.rdb, nil
	}
	if err := need("this command", "REDIS_URL", t.st.RedisURL); err != nil {
		return nil, err
	}
	rdb, err := config.RedisClient(t.st.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("REDIS_URL: ping: %w", err)
	}
	t.rdb = rdb
	return rdb, nil
}

// wompi returns the Wompi client, or an error naming the missing setting.
func (t *Tool) wompi() (*wompi.Client, error) {
	if t.wc != nil {
		return t.wc, nil
	}
	if err := need("the wompi rail", "WOMPI_API_KEY", t.st.WompiAPIKey, "WOMPI_PRINCIPAL_ID", t.st.WompiPrincipalID); err != nil {
		return nil, err
	}
	wc, err := wompi.New(wompi.Config{BaseURL: t.st.WompiBaseURL, APIKey: t.st.WompiAPIKey, PrincipalID: t.st.WompiPrincipalID,
		HTTPClient: &http.Client{Timeout: 20 * time.Second}, ReadRetries: wompi.DefaultReadRetries})
	if err != nil {
		return nil, fmt.Errorf("WOMPI_BASE_URL: %w", err)
	}
	t.wc = wc
	return wc, nil
}

// events returns the codec, which only decodes: no command encodes a record
// (dlq replay republishes a dead letter's bytes as they are), and a tool
// that only reads must not register schemas in the shared registry.
func (t *Tool) events(ctx context.Context) (*events.Codec, error) {
	if t.codec != nil {
		return t.codec, nil
	}
	c, err := events.NewCodec(ctx, events.WithRegistry(t.st.SchemaRegistryURL), events.WithTopics(t.st.Topics), events.WithDecodeOnly())
	if err != nil {
		return nil, fmt.Errorf("SCHEMA_REGISTRY_URL: %w", err)
	}
	t.codec = c
	return c, nil
}
