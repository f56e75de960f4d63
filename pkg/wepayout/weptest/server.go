package weptest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// maxBody bounds a request body the simulator reads.
const maxBody = 1 << 20

// Server is the simulator. Create it with New or NewTestServer; serve
// Handler yourself, or call Start. Safe for concurrent use.
type Server struct {
	cfg   Config
	clock Clock
	log   *slog.Logger

	mu        sync.Mutex
	payments  []*payment // by id order
	active    []*payment // a step pending
	due       time.Time  // no payment of active has a step due before it
	byID      map[int64]*payment
	byInvoice map[string][]*payment
	nextID    int64
	balance   int64

	fmu         sync.Mutex
	faults      Faults
	faultCounts FaultCounts
	failNext    []int
	dropNext    int
	rng         *rand.Rand

	hooks *hookQueue

	handler http.Handler

	runMu   sync.Mutex
	httpSrv *http.Server
	testSrv *httptest.Server
	url     string
	stop    chan struct{}
	loopWG  sync.WaitGroup
	closed  bool
	closing chan struct{}
}

// New returns a simulator. It starts the webhook workers (stopped by Close)
// but no listener and no tick loop.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	s := &Server{
		cfg: cfg, clock: cfg.Clock, log: cfg.Logger,
		byID: map[int64]*payment{}, byInvoice: map[string][]*payment{},
		nextID: cfg.FirstID, balance: cfg.BalanceInCents,
		closing: make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.faults = cfg.Faults
	for _, r := range cfg.Rules {
		if len(r.Digits) != 2 || len(r.Outcome.Path) == 0 {
			return nil, errors.New("weptest: a rule needs two digits and a path")
		}
	}
	s.hooks = newHookQueue(s)
	s.handler = s.routes()
	return s, nil
}

// TB is the part of testing.TB NewTestServer needs.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// NewTestServer starts the simulator on an httptest server and closes it
// when the test ends. With the real clock it also runs the tick loop. Point
// a wepayout.Client at URL() (or use Client).
func NewTestServer(tb TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("weptest: %v", err)
	}
	s.runMu.Lock()
	s.testSrv = httptest.NewServer(s.handler)
	s.url = s.testSrv.URL
	s.runMu.Unlock()
	s.startLoop()
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Handler returns the HTTP handler: the API under /v2 and the debug
// endpoints under /_sim.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on addr (e.g. "127.0.0.1:8091", or ":0") and serves in the
// background; with the real clock it also runs the tick loop.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.runMu.Lock()
	s.httpSrv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	srv := s.httpSrv
	s.runMu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("wepayoutsim: serve", "err", err)
		}
	}()
	s.startLoop()
	return nil
}

// URL is the server root once started ("" before): the value of
// wepayout.Config.BaseURL (WEPAYOUT_BASE_URL).
func (s *Server) URL() string {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.url
}

// Clock returns the simulator's clock.
func (s *Server) Clock() Clock { return s.clock }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Client returns a wepayout.Client for this server: cfg with BaseURL and
// APIKey filled in when empty.
func (s *Server) Client(cfg wepayout.Config) *wepayout.Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = s.URL()
	}
	if cfg.APIKey == "" {
		cfg.APIKey = s.cfg.APIKey
	}
	c, err := wepayout.New(cfg)
	if err != nil {
		panic(err) // only if the server was never started or cfg is bad
	}
	return c
}

func (s *Server) startLoop() {
	if _, real := s.clock.(realClock); !real {
		return
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.stop != nil {
		return
	}
	s.stop = make(chan struct{})
	stop := s.stop
	s.loopWG.Add(1)
	go func() {
		defer s.loopWG.Done()
		t := time.NewTicker(s.cfg.TickInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.Tick()
			}
		}
	}()
}

// Shutdown stops accepting calls, waits for in-flight ones, delivers the
// queued webhooks (until ctx ends) and releases everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.runMu.Lock()
	if s.closed {
		s.runMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	srv, ts, stop := s.httpSrv, s.testSrv, s.stop
	s.runMu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	if ts != nil {
		ts.Close()
	}
	if stop != nil {
		close(stop)
		s.loopWG.Wait()
	}
	s.hooks.releaseHeld()
	if werr := s.hooks.wait(ctx); werr != nil && err == nil {
		err = werr
	}
	s.hooks.close()
	return err
}

// Close stops everything at once; queued webhooks are discarded.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("POST /v2/payout/payments", s.handleCreate)
	api.HandleFunc("GET /v2/payout/payments", s.handleList)
	api.HandleFunc("GET /v2/payout/payments/{id}", s.handleGet)
	api.HandleFunc("GET /v2/account/{merchantId}/balance", s.handleBalance)
	api.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "Not Found")
	})
	root := http.NewServeMux()
	root.Handle("/v2/", s.apiMiddleware(api))
	s.debugRoutes(root)
	return root
}

// apiMiddleware applies FailNext, then checks the Bearer key, then the
// latency and error faults.
func (s *Server) apiMiddleware(next http.Handler) http.Handler {
	key := []byte(s.cfg.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, fail := s.rollRequestFaults()
		if fail == http.StatusUnauthorized || fail == http.StatusForbidden {
			writeUnauthorized(w, fail)
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), key) != 1 {
			writeUnauthorized(w, http.StatusUnauthorized)
			return
		}
		if d > 0 {
			// Read the body first: only then does net/http watch the
			// connection and cancel the context when the client leaves.
			if r.Body != nil {
				body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
				if err != nil {
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.closing:
				t.Stop()
				return
			}
		}
		switch {
		case fail == http.StatusTooManyRequests:
			writeMessage(w, fail, "Too Many Attempts.")
			return
		case fail != 0:
			writeMessage(w, fail, http.StatusText(fail))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeUnauthorized answers WEpayout's 401 shape [doc].
func writeUnauthorized(w http.ResponseWriter, status int) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "Unauthenticated."}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"message":"encode"}`, http.StatusInternalServerError)
		return
	}
	writeBytes(w, status, b)
}

// writeBytes answers b, a JSON document.
func writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeMessage answers WEpayout's error shape {"message": ...} [doc].
func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}
