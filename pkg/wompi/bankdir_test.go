package wompi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// banksServer serves GET /banks from a list of answers, one per call (the
// last one repeats). An answer with a gate waits for it to close (or for
// the request to end) before it is written; entered receives the call's
// number when it starts.
type banksServer struct {
	calls   atomic.Int64
	entered chan int64
	answers []banksAnswer
}

type banksAnswer struct {
	gate   chan struct{}
	status int
	banks  map[string]string // code -> bankId
}

func (s *banksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/banks" {
		http.NotFound(w, r)
		return
	}
	n := s.calls.Add(1)
	s.entered <- n
	a := s.answers[min(int(n), len(s.answers))-1]
	if a.gate != nil {
		select {
		case <-a.gate:
		case <-r.Context().Done():
			return
		}
	}
	if a.status != 0 {
		w.WriteHeader(a.status)
		return
	}
	var recs []string
	for code, id := range a.banks {
		recs = append(recs, fmt.Sprintf(`{"id":%q,"name":"Bank %s","code":%q}`, id, code, code))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"data":{"page":1,"limit":100,"total":%d,"pages":1,"records":[%s]}}`, len(recs), strings.Join(recs, ","))
}

// testDirectory is a Rail's bank directory as the dispatcher uses it
// (BankIDs), its reads run under a life of its own.
type testDirectory struct {
	r  *Rail
	bg rail.Background
	wg sync.WaitGroup // refresh goroutines
}

// newBankDirectory returns the directory of a Rail whose Wompi is the given
// server, with a one-hour TTL and reads bound by a minute.
func newBankDirectory(t *testing.T, srv *banksServer) *testDirectory {
	t.Helper()
	srv.entered = make(chan int64, 64)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	wc, err := New(Config{BaseURL: ts.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	d := &testDirectory{r: NewRail(wc, RailConfig{BanksTTL: time.Hour})}
	life, kill := context.WithCancelCause(context.Background())
	d.bg = rail.Background{Life: life, Timeout: time.Minute, Go: d.wg.Go}
	t.Cleanup(func() { kill(context.Canceled); d.wg.Wait() })
	return d
}

func (d *testDirectory) resolve(ctx context.Context, codes []string) ([]string, error) {
	return d.r.BankIDs(ctx, d.bg, codes)
}

// makeStale ages the cached table past the TTL.
func (d *testDirectory) makeStale() {
	d.r.dir.mu.Lock()
	d.r.dir.fetched = time.Now().Add(-2 * d.r.dir.ttl)
	d.r.dir.mu.Unlock()
}

// returns waits for f to return (a liveness bound, not a timing
// assertion: the old directory held its mutex across GET /banks and never
// returned here while the call hung).
func returns[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return while GET /banks hangs: it is blocked behind the refresh", what)
		panic("unreachable")
	}
}

type resolved struct {
	ids []string
	err error
}

// A slow GET /banks blocks no batch the cached table can serve: neither the
// one whose call found the table stale (it is served the last good table
// while the refresh runs) nor any other; an unknown code waits for that one
// refresh, and every caller shares it.
func TestBankDirectorySlowRefreshDoesNotBlockResolve(t *testing.T) {
	gate := make(chan struct{})
	srv := &banksServer{answers: []banksAnswer{
		{banks: map[string]string{"1007": "b-1007"}},
		{gate: gate, banks: map[string]string{"1007": "b-1007", "1051": "b-1051"}},
	}}
	d := newBankDirectory(t, srv)
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	ctx := context.Background()
	if ids, err := d.resolve(ctx, []string{"1007"}); err != nil || ids[0] != "b-1007" {
		t.Fatalf("first resolve: %v %v", ids, err)
	}
	<-srv.entered
	d.makeStale()

	// The stale table starts the refresh, which hangs.
	r := returns(t, "the resolve that found the table stale", func() resolved {
		ids, err := d.resolve(ctx, []string{"1007"})
		return resolved{ids, err}
	})
	if r.err != nil || r.ids[0] != "b-1007" {
		t.Fatalf("stale resolve: %v %v, want the last good table", r.ids, r.err)
	}
	if n := <-srv.entered; n != 2 {
		t.Fatalf("call %d, want the refresh as call 2", n)
	}
	// Other batches go on while it hangs.
	for i := range 3 {
		r := returns(t, "a resolve of a cached code", func() resolved {
			ids, err := d.resolve(ctx, []string{"1007", "1007"})
			return resolved{ids, err}
		})
		if r.err != nil || r.ids[0] != "b-1007" || r.ids[1] != "b-1007" {
			t.Fatalf("resolve %d during the refresh: %v %v", i, r.ids, r.err)
		}
	}
	// An unknown code joins the refresh in flight rather than starting one
	// or being reported unknown from the old table.
	unknown := make(chan resolved, 1)
	go func() {
		ids, err := d.resolve(ctx, []string{"1051", "1007"})
		unknown <- resolved{ids, err}
	}()
	close(gate)
	r = <-unknown
	if r.err != nil || r.ids[0] != "b-1051" || r.ids[1] != "b-1007" {
		t.Fatalf("unknown code: %v %v, want it resolved by the refresh", r.ids, r.err)
	}
	if ids, err := d.resolve(ctx, []string{"1051"}); err != nil || ids[0] != "b-1051" {
		t.Fatalf("after the refresh: %v %v", ids, err)
	}
	if n := srv.calls.Load(); n != 2 {
		t.Fatalf("%d GET /banks, want 2 (one refresh shared by every caller)", n)
	}
}

// Callers that find no table at all share one GET /banks, and a caller
// that gives up waiting does not cancel it for the others.
func TestBankDirectoryFirstFetchIsSharedAndOutlivesACaller(t *testing.T) {
	gate := make(chan struct{})
	srv := &banksServer{answers: []banksAnswer{{gate: gate, banks: map[string]string{"1007": "b-1007"}}}}
	d := newBankDirectory(t, srv)

	// The first caller starts the fetch, then gives up.
	cctx, cancel := context.WithCancelCause(context.Background())
	first := make(chan error, 1)
	go func() { _, err := d.resolve(cctx, []string{"1007"}); first <- err }()
	<-srv.entered
	var wg sync.WaitGroup
	results := make([]resolved, 8)
	for i := range results {
		wg.Go(func() {
			ids, err := d.resolve(context.Background(), []string{"1007"})
			results[i] = resolved{ids, err}
		})
	}
	giveUp := errors.New("batch gave up")
	cancel(giveUp)
	if err := <-first; !errors.Is(err, giveUp) {
		t.Fatalf("cancelled caller: err %v, want its context's cause", err)
	}
	close(gate)
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.ids[0] != "b-1007" {
			t.Fatalf("caller %d: %v %v", i, r.ids, r.err)
		}
	}
	if n := srv.calls.Load(); n != 1 {
		t.Fatalf("%d GET /banks, want 1 shared by every caller", n)
	}
}

// A failed refresh keeps the last good table; with no table, the failure
// is the caller's error (the batch retries).
func TestBankDirectoryFailedRefreshKeepsTheLastTable(t *testing.T) {
	srv := &banksServer{answers: []banksAnswer{
		{status: http.StatusServiceUnavailable},
		{banks: map[string]string{"1007": "b-1007"}},
		{status: http.StatusServiceUnavailable},
	}}
	d := newBankDirectory(t, srv)
	ctx := context.Background()
	if _, err := d.resolve(ctx, []string{"1007"}); err == nil {
		t.Fatal("no table and GET /banks failed: want an error")
	}
	if ids, err := d.resolve(ctx, []string{"1007"}); err != nil || ids[0] != "b-1007" {
		t.Fatalf("second resolve: %v %v", ids, err)
	}
	d.makeStale()
	for range 2 {
		if ids, err := d.resolve(ctx, []string{"1007"}); err != nil || ids[0] != "b-1007" {
			t.Fatalf("stale table, failing refresh: %v %v, want the last good table", ids, err)
		}
	}
	d.wg.Wait()
	if ids, err := d.resolve(ctx, []string{"1007"}); err != nil || ids[0] != "b-1007" {
		t.Fatalf("after the failed refresh: %v %v, want the last good table", ids, err)
	}
}
