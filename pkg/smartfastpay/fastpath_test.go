package smartfastpay_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// answerRecorder keeps the bodies of the create answers a client reads.
type answerRecorder struct {
	mu      sync.Mutex
	answers [][]byte
}

func (a *answerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, sfp.PathPayout) {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.answers = append(a.answers, b)
	a.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// TestSimulatorAnswersTakeTheFastPath: every answer shape the simulator
// writes for a create (bare or wrapped, amounts as strings or numbers) is
// read by the hand-written reader, with the id and status Create returns.
// Without this the load run would measure encoding/json again.
func TestSimulatorAnswersTakeTheFastPath(t *testing.T) {
	for _, cfg := range []sfptest.Config{{}, {WrapCreate: true}, {NumericAmounts: true}, {WrapCreate: true, NumericAmounts: true}} {
		rec := &answerRecorder{}
		s := sfptest.NewTestServer(t, cfg)
		c := s.Client(func(c *sfp.Config) { c.HTTPClient = &http.Client{Transport: rec} })
		p, err := c.Create(ctx, validRequest("https://example.com/webhooks/smartfastpay")("req-fast", 50_000))
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.answers) != 1 {
			t.Fatalf("%+v: %d create answers recorded, want 1", cfg, len(rec.answers))
		}
		id, status, ok := sfp.ReadCreateAnswer(rec.answers[0])
		if !ok || id != p.ProviderID || status != p.ProviderStatus {
			t.Errorf("%+v: the reader took %q as %q, %q, %v; Create returned %q, %q", cfg, rec.answers[0], id, status, ok, p.ProviderID, p.ProviderStatus)
		}
	}
}
