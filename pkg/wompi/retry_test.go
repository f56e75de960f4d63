package wompi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// flaky is a Wompi stand-in whose answers fail on demand, counting every
// call by path and page.
type flaky struct {
	mu    sync.Mutex
	hits  map[string]int
	fails map[string]int // calls still to fail, by key
	code  map[string]int // the failing status, by key (default 503)
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	if p := r.URL.Query().Get("page"); p != "" {
		key += "?page=" + p
	}
	f.mu.Lock()
	f.hits[key]++
	fail := f.fails[key] > 0
	if fail {
		f.fails[key]--
	}
	code := f.code[key]
	f.mu.Unlock()
	if r.URL.Path == "/v1/banks" {
		<-r.Context().Done() // longer than any client's timeout, however late the handler runs
		return
	}
	if fail {
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"status":`+fmt.Sprint(code)+`,"code":"X","message":"flaky"}`)
		return
	}
	switch {
	case r.URL.Path == "/v1/payouts" && r.Method == http.MethodGet:
		page := r.URL.Query().Get("page")
		fmt.Fprintf(w, `{"data":{"page":%s,"limit":2,"total":6,"pages":3,"records":[{"id":"p%s-a"},{"id":"p%s-b"}]}}`, page, page, page)
	case r.URL.Path == "/v1/limits":
		_, _ = io.WriteString(w, `{"data":{"numberOfTransactionsConsumed":7}}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *flaky) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[key]
}

func newFlaky(t *testing.T, retries int, timeout time.Duration) (*flaky, *wompi.Client) {
	t.Helper()
	f, c, _ := newFlakyURL(t, retries, timeout)
	return f, c
}

// newFlakyURL is newFlaky that also gives the server's URL, for another
// client of the same server.
func newFlakyURL(t *testing.T, retries int, timeout time.Duration) (*flaky, *wompi.Client, string) {
	t.Helper()
	f := &flaky{hits: map[string]int{}, fails: map[string]int{}, code: map[string]int{}}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	c, err := wompi.New(wompi.Config{BaseURL: ts.URL + "/v1", APIKey: "k", PrincipalID: "p",
		HTTPClient: &http.Client{Timeout: timeout}, ReadRetries: retries, ReadBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return f, c, ts.URL
}

func listIDs(c *wompi.Client) ([]string, error) {
	var ids []string
	for p, err := range c.Payouts(context.Background(), wompi.PayoutsFilter{}) {
		if err != nil {
			return ids, err
		}
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// TestReadRetriesRepeatTheFailedPageOnly: a listing whose second page fails
// twice still yields every record once, and the pages already read are not
// fetched again.
func TestReadRetriesRepeatTheFailedPageOnly(t *testing.T) {
	f, c := newFlaky(t, 3, 5*time.Second)
	f.fails["GET /v1/payouts?page=2"] = 2
	ids, err := listIDs(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "p1-a,p1-b,p2-a,p2-b,p3-a,p3-b" {
		t.Fatalf("records = %s", got)
	}
	if f.count("GET /v1/payouts?page=1") != 1 || f.count("GET /v1/payouts?page=2") != 3 || f.count("GET /v1/payouts?page=3") != 1 {
		t.Fatalf("calls = %v, want page 1 once, page 2 three times, page 3 once", f.hits)
	}

	// 429 is retried as well.
	f.fails["GET /v1/limits"], f.code["GET /v1/limits"] = 1, http.StatusTooManyRequests
	if l, err := c.Limits(context.Background()); err != nil || l.NumberOfTransactionsConsumed != 7 {
		t.Fatalf("limits after a 429: %+v, %v", l, err)
	}
}

func TestReadRetriesGiveUp(t *testing.T) {
	f, c := newFlaky(t, 2, 5*time.Second)
	f.fails["GET /v1/payouts?page=1"] = 10
	_, err := listIDs(c)
	if we, ok := wompi.AsError(err); !ok || we.HTTPStatus != 503 {
		t.Fatalf("err = %v, want the 503", err)
	}
	if n := f.count("GET /v1/payouts?page=1"); n != 3 {
		t.Fatalf("page 1 called %d times, want 1 + 2 retries", n)
	}
}

func TestReadRetriesOff(t *testing.T) {
	f, c := newFlaky(t, 0, 5*time.Second)
	f.fails["GET /v1/payouts?page=1"] = 1
	if _, err := listIDs(c); !wompi.IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if n := f.count("GET /v1/payouts?page=1"); n != 1 {
		t.Fatalf("called %d times with ReadRetries 0", n)
	}
}

// TestReadRetriesNeverRepeatPostsOrRejections: a POST that failed may have
// created the batch, a 400 will fail again, and a timeout already cost a
// whole timeout; none is repeated by the client.
func TestReadRetriesNeverRepeatPostsOrRejections(t *testing.T) {
	// The answers below must come within the client's timeout however
	// loaded the box (at 100ms a 400 that came late was a timeout, which
	// is retryable); the timeout itself is a short client's, on a GET the
	// server never answers (a second: the GET must reach it first).
	f, c, url := newFlakyURL(t, 3, 30*time.Second)
	short, err := wompi.New(wompi.Config{BaseURL: url + "/v1", APIKey: "k", PrincipalID: "p",
		HTTPClient: &http.Client{Timeout: time.Second}, ReadRetries: 3, ReadBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.fails["POST /v1/payouts"] = 5
	_, err = c.CreatePayout(context.Background(), "key-1", batch("b-1", tx("r-1", "1234567890", 150_000)))
	if !wompi.IsOutcomeUnknown(err) {
		t.Fatalf("POST err = %v, want outcome unknown", err)
	}
	if n := f.count("POST /v1/payouts"); n != 1 {
		t.Fatalf("POST sent %d times", n)
	}

	f.fails["GET /v1/limits"], f.code["GET /v1/limits"] = 5, http.StatusBadRequest
	if _, err := c.Limits(context.Background()); wompi.IsRetryable(err) {
		t.Fatalf("400 err = %v, want not retryable", err)
	}
	if n := f.count("GET /v1/limits"); n != 1 {
		t.Fatalf("400 GET sent %d times", n)
	}

	_, err = short.Banks(context.Background())
	if we, ok := wompi.AsError(err); !ok || !we.Timeout() {
		t.Fatalf("slow GET err = %v, want a timeout", err)
	}
	if n := f.count("GET /v1/banks"); n != 1 {
		t.Fatalf("timed-out GET sent %d times", n)
	}
}

// TestHealthReadsAnUnhealthy503BeforeRetrying: a 503 from /health whose
// envelope carries the health payload is an answer, not a failure; the
// client reads it at once instead of repeating the call ReadRetries times.
// A 503 without a payload is still retried.
func TestHealthReadsAnUnhealthy503BeforeRetrying(t *testing.T) {
	var mu sync.Mutex
	calls, bare := 0, false
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		b := bare
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		if b {
			_, _ = io.WriteString(w, `{"status":503,"code":"SERVICE_UNAVAILABLE","message":"down"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":503,"code":"SERVICE_UNAVAILABLE","message":"payments down",`+
			`"data":{"status":"UNHEALTHY","services":[{"name":"users","healthy":true},{"name":"payments","healthy":false}]}}`)
	}))
	t.Cleanup(ts.Close)
	c, err := wompi.New(wompi.Config{BaseURL: ts.URL + "/v1", APIKey: "k", PrincipalID: "p", ReadRetries: 4, ReadBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(context.Background())
	if err != nil || h.Status != wompi.HealthUnhealthy {
		t.Fatalf("health = %+v, %v; want UNHEALTHY", h, err)
	}
	if calls != 1 {
		t.Fatalf("GET /health sent %d times for a 503 that carried its payload, want 1", calls)
	}

	mu.Lock()
	calls, bare = 0, true
	mu.Unlock()
	if _, err := c.Health(context.Background()); !wompi.IsRetryable(err) {
		t.Fatalf("bare 503: err = %v, want the retryable 503", err)
	}
	if calls != 5 {
		t.Fatalf("bare 503: GET /health sent %d times, want 1 + 4 retries", calls)
	}
}
