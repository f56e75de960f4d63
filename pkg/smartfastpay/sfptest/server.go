package sfptest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
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
	"sync/atomic"
	"time"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// Server is the simulator. Create it with New or NewTestServer; serve
// Handler yourself, or call Start. Safe for concurrent use.
type Server struct {
	cfg   Config
	clock Clock
	log   *slog.Logger

	idPrefix [4]byte
	reqSeq   atomic.Uint64

	mu        sync.Mutex
	tokens    map[string]time.Time // token -> expiry
	payouts   []*payoutRec         // creation order
	byID      map[string]*payoutRec
	byTx      map[string][]*payoutRec
	due       dueHeap
	balance   int64
	refused   int64 // creates answered 400
	nextID    int64
	tokenStat TokenStats

	fmu         sync.Mutex
	faults      Faults
	faultCounts FaultCounts
	rng         *rand.Rand
	failNext    []int
	failToken   []int
	dropNext    int

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

// TokenStats counts the token work.
type TokenStats struct {
	Issued  int64 `json:"issued"`
	Refused int64 `json:"refused"` // bad credentials at /oauth2/token
	Expired int64 `json:"expired"` // calls refused for an expired token
	Invalid int64 `json:"invalid"` // calls refused for a missing or unknown token
}

// New returns a simulator. It starts the callback workers (stopped by
// Close) but no listener and no tick loop.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	for _, r := range cfg.Rules {
		if r.Suffix == "" {
			return nil, errors.New("sfptest: a rule has an empty Suffix")
		}
		for _, st := range r.Path {
			if sfp.MapStatus(st) == "" {
				return nil, errors.New("sfptest: rule " + r.Suffix + ": unknown status " + st)
			}
		}
	}
	s := &Server{
		cfg:     cfg,
		clock:   cfg.Clock,
		log:     cfg.Logger,
		tokens:  map[string]time.Time{},
		byID:    map[string]*payoutRec{},
		byTx:    map[string][]*payoutRec{},
		balance: cfg.BalanceInCents,
		nextID:  100000,
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
	binary.BigEndian.PutUint32(s.idPrefix[:], s.rng.Uint32())
	s.faults = cfg.Faults
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
// when the test ends. With the real clock it also runs the tick loop.
// Point a smartfastpay.Client at URL() (or use Client).
func NewTestServer(tb TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("sfptest: %v", err)
	}
	s.runMu.Lock()
	s.testSrv = httptest.NewServer(s.handler)
	s.url = s.testSrv.URL
	s.runMu.Unlock()
	s.startLoop()
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Handler returns the HTTP handler: the API and the debug endpoints under
// /_sim.
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
			s.log.Error("smartfastpaysim: serve", "err", err)
		}
	}()
	s.startLoop()
	return nil
}

// URL is the server root once started ("" before): the value for
// smartfastpay.Config.BaseURL.
func (s *Server) URL() string {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.url
}

// Clock returns the simulator's clock.
func (s *Server) Clock() Clock { return s.clock }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Client returns a smartfastpay.Client for this server with its
// credentials and webhook secret; extra, when not nil, adjusts the Config
// first.
func (s *Server) Client(extra func(*sfp.Config)) *sfp.Client {
	cfg := sfp.Config{BaseURL: s.URL(), ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret,
		WebhookSecret: s.cfg.WebhookSecret, Now: s.clock.Now}
	if extra != nil {
		extra(&cfg)
	}
	c, err := sfp.New(cfg)
	if err != nil {
		panic(err) // only if the server was never started
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
// queued callbacks (until ctx ends) and releases everything.
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

// Close stops everything at once; queued callbacks are discarded.
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
	api.HandleFunc("POST "+sfp.PathPayout, s.handleCreate)
	api.HandleFunc("GET "+sfp.PathPayout+"/{id}", s.handleGet)
	api.HandleFunc("GET "+sfp.PathPayouts, s.handleList)
	api.HandleFunc("GET "+sfp.PathBalance, s.handleBalance)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, "no such endpoint")
	})

	root := http.NewServeMux()
	root.Handle("POST "+sfp.PathToken, s.faultsMiddleware(true, http.HandlerFunc(s.handleToken)))
	root.Handle("/", s.faultsMiddleware(false, s.authMiddleware(api)))
	s.debugRoutes(root)
	return root
}

// faultsMiddleware applies, in order: the one-shot FailNext, the latency,
// and the random 503 and 429.
func (s *Server) faultsMiddleware(token bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := s.takeFailNext(token); st != 0 {
			s.writeError(w, st, "simulated failure ("+strconv.Itoa(st)+")")
			return
		}
		d, fail := s.rollRequestFaults()
		if d > 0 {
			// Read the body first: only then does net/http watch the
			// connection and cancel the context when the client leaves.
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				if !token && r.Method == http.MethodPost {
					// The client gave up; the provider may still apply the
					// payout. It does: the worst case for the client.
					break
				}
				return
			case <-s.closing:
				t.Stop()
				return
			}
		}
		switch fail {
		case http.StatusServiceUnavailable:
			s.writeError(w, fail, "service unavailable (simulated)")
			return
		case http.StatusTooManyRequests:
			s.writeError(w, fail, "too many requests (simulated)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authMiddleware checks the Bearer token: unknown or expired -> 401.
func (s *Server) authMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		now := s.clock.Now()
		s.mu.Lock()
		exp, known := s.tokens[tok]
		valid := ok && known && now.Before(exp)
		switch {
		case valid:
		case known:
			s.tokenStat.Expired++
		default:
			s.tokenStat.Invalid++
		}
		s.mu.Unlock()
		if !valid {
			msg := "missing or invalid access token"
			if known {
				msg = "access token expired"
			}
			s.writeError(w, http.StatusUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleToken is POST /oauth2/token with HTTP Basic and no body [doc].
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.cfg.ClientID+":"+s.cfg.ClientSecret))
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		s.mu.Lock()
		s.tokenStat.Refused++
		s.mu.Unlock()
		s.writeError(w, http.StatusUnauthorized, "invalid client credentials")
		return
	}
	var b [16]byte
	s.fmu.Lock()
	binary.BigEndian.PutUint64(b[:8], s.rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], s.rng.Uint64())
	s.fmu.Unlock()
	tok := "sfpsim_" + hex.EncodeToString(b[:])
	now := s.clock.Now()
	s.mu.Lock()
	if len(s.tokens) > 1024 {
		for t, exp := range s.tokens {
			if !now.Before(exp) {
				delete(s.tokens, t)
			}
		}
	}
	s.tokens[tok] = now.Add(s.cfg.TokenTTL)
	s.tokenStat.Issued++
	s.mu.Unlock()
	secs := int64((s.cfg.TokenTTL + time.Second - 1) / time.Second)
	s.writeData(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": secs})
}

// ExpireTokens makes every token issued so far expired: the next call with
// one is answered 401, and a fresh token works.
func (s *Server) ExpireTokens() {
	now := s.clock.Now()
	s.mu.Lock()
	for t := range s.tokens {
		s.tokens[t] = now
	}
	s.mu.Unlock()
}

// TokenStats returns the token counters.
func (s *Server) TokenStats() TokenStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenStat
}

// requestID returns a fresh requestId (UUID-shaped).
func (s *Server) requestID() string {
	var b [16]byte
	copy(b[:4], s.idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], s.reqSeq.Add(1))
	b[6] = 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("smartfastpaysim: encode answer", "err", err)
		http.Error(w, `{"moreInformation":"encode"}`, http.StatusInternalServerError)
		return
	}
	s.writeBytes(w, status, b)
}

// writeBytes answers b, a JSON document.
func (s *Server) writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeData answers {"requestId", "data"} [doc].
func (s *Server) writeData(w http.ResponseWriter, status int, data any) {
	s.writeJSON(w, status, map[string]any{"requestId": s.requestID(), "data": data})
}

// writeError answers {"requestId", "moreInformation"} [sdk].
func (s *Server) writeError(w http.ResponseWriter, status int, msg string) {
	s.writeJSON(w, status, map[string]any{"requestId": s.requestID(), "moreInformation": msg})
}
