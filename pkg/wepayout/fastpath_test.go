package wepayout_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// listingRecorder keeps the bodies of the answers a client reads: the
// listing's in answers, the others in others.
type listingRecorder struct {
	mu      sync.Mutex
	answers [][]byte
	others  [][]byte
}

func (l *listingRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	listing := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/v2/payout/payments")
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if listing {
		l.answers = append(l.answers, b)
	} else {
		l.others = append(l.others, b)
	}
	l.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// TestSimulatorAnswersTakeTheFastPaths: the page the simulator answers a
// lookup of an id it never saw, its create answer and its GET answer (each
// typed member too) are read by the hand-written readers (else the load
// run would measure encoding/json again), and a page that lists the
// payment is not read as empty.
func TestSimulatorAnswersTakeTheFastPaths(t *testing.T) {
	rec := &listingRecorder{}
	_, c, _ := newSim(t, weptest.Config{}, wepayout.Config{HTTPClient: &http.Client{Transport: rec}})
	if found, err := c.Find(context.Background(), "never-sent"); err != nil || len(found) != 0 {
		t.Fatalf("Find = %v, %v", found, err)
	}
	created, err := c.Create(context.Background(), pixRequest("sent-once", 5_000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), created.ProviderID); err != nil {
		t.Fatal(err)
	}
	if found, err := c.Find(context.Background(), "sent-once"); err != nil || len(found) != 1 {
		t.Fatalf("Find = %v, %v; want the payment", found, err)
	}
	if len(rec.answers) != 2 {
		t.Fatalf("%d listing answers recorded, want 2", len(rec.answers))
	}
	if !wepayout.ReadEmptyPage(rec.answers[0]) {
		t.Errorf("the simulator's empty page %s does not take the fast path", rec.answers[0])
	}
	if wepayout.ReadEmptyPage(rec.answers[1]) {
		t.Errorf("a page listing a payment, %s, was read as empty", rec.answers[1])
	}
	// The create's answer and GET's take the payment reader, and their
	// typed members the plain readers.
	if len(rec.others) != 2 {
		t.Fatalf("%d other answers recorded, want the create's and GET's", len(rec.others))
	}
	for _, a := range rec.others {
		if !wepayout.ReadPaymentAnswer(a) {
			t.Errorf("the simulator's payment answer %s does not take the fast path", a)
		}
		if !wepayout.PlainPaymentFields(a) {
			t.Errorf("a typed member of the simulator's payment answer %s is read by its UnmarshalJSON", a)
		}
	}
}
