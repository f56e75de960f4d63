package track

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// FuzzWebhook throws arbitrary bodies and checksum headers at the webhook
// handler (real Redis, real Kafka wire protocol): it never panics, never
// answers 5xx for bad input, and answers 2xx only to a correctly signed
// event, for which it has produced before answering.
func FuzzWebhook(f *testing.F) {
	k := testenv.Kafka(f)
	rs := testenv.Redis(f)
	sim := wompitest.NewTestServer(f, wompitest.Config{})
	wc, err := wompi.New(wompi.Config{BaseURL: sim.BaseURL(), APIKey: sim.Config().APIKey, PrincipalID: sim.Config().PrincipalID})
	if err != nil {
		f.Fatal(err)
	}
	codec, err := events.NewCodec(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	topics := events.DefaultTopics()
	topics.Status, topics.BatchStatus = k.Topic(f, "status", 1), k.Topic(f, "batch-status", 1)
	secret := sim.Config().EventsSecret
	e, err := New(Config{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Codec: codec, Topics: topics, Redis: rs.Client(),
		Prefix: rs.Prefix(), Wompi: wc, EventsSecret: secret, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(e.Close)
	h := e.Handler()

	f.Add([]byte(`{"event":"transaction.updated","data":{"transaction":{"id":"t1","payoutId":"p1","status":"APPROVED","amountInCents":100}},"signature":{"properties":["transaction.id","transaction.status"],"checksum":"00"},"timestamp":1}`), "")
	f.Add([]byte(`{"event":"nope"}`), "abc")
	f.Add(bytes.Repeat([]byte("x"), 2<<20), "")
	f.Add([]byte(`[1,2,3]`), "")
	f.Fuzz(func(t *testing.T, body []byte, checksum string) {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/wompi", bytes.NewReader(body))
		if checksum != "" {
			req.Header.Set("X-Event-Checksum", checksum)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code := rec.Code
		signed := wompi.VerifyEvent(body, checksum, secret) == nil
		switch {
		case code >= 500 && !signed:
			t.Fatalf("bad input answered %d", code)
		case code < 300 && !signed:
			t.Fatalf("an unsigned event was accepted with %d", code)
		case code != http.StatusRequestEntityTooLarge && len(body) > 1<<20 && !signed:
			t.Fatalf("a %d-byte body answered %d, want 413", len(body), code)
		}
	})
}
