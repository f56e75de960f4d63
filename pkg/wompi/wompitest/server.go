package wompitest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

type bankEntry struct {
	id, code, name string
}

type account struct {
	Account
	updatedAt time.Time
}

// dayUsage is what one Bogota day has consumed.
type dayUsage struct {
	batches    int
	txs        int64
	amount     int64
	perAccount map[string]int64
}

// Server is the simulator. Create it with New or NewTestServer; serve
// Handler yourself, or call Start. Safe for concurrent use.
type Server struct {
	cfg   Config
	clock Clock
	log   *slog.Logger

	banks      []bankEntry
	bankByID   map[string]*bankEntry
	bankByCode map[string]*bankEntry

	idPrefix [8]byte
	seq      atomic.Uint64
	traceSeq atomic.Uint64

	mu          sync.Mutex
	accounts    map[string]*account
	accountList []string // config order
	payouts     []*batch
	payoutByID  map[string]*batch
	byBatchRef  map[string][]*batch
	byTxRef     map[string]*txn // by reference: the first accepted, then txn.sameRef
	idem        map[string]time.Time
	days        map[string]*dayUsage
	due         dueHeap
	lastPrune   time.Time
	reports     map[string]reportMeta

	fmu         sync.Mutex
	faults      Faults
	faultCounts FaultCounts // guarded by fmu
	rng         *rand.Rand
	// chaosKeys (guarded by fmu): the keys seen by chaosfaults.go.
	chaosKeys map[string]bool

	hooks *hookQueue

	handler http.Handler

	runMu   sync.Mutex
	httpSrv *http.Server
	testSrv *httptest.Server
	url     string
	stop    chan struct{}
	loopWG  sync.WaitGroup
	closed  bool
	closing chan struct{} // closed by Shutdown: aborts injected latency
}

// New returns a simulator. It starts the webhook workers (stopped by Close)
// but no listener and no settle loop.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	s := &Server{
		cfg:        cfg,
		clock:      cfg.Clock,
		log:        cfg.Logger,
		bankByID:   map[string]*bankEntry{},
		bankByCode: map[string]*bankEntry{},
		accounts:   map[string]*account{},
		payoutByID: map[string]*batch{},
		byBatchRef: map[string][]*batch{},
		byTxRef:    map[string]*txn{},
		idem:       map[string]time.Time{},
		days:       map[string]*dayUsage{},
		closing:    make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	binary.BigEndian.PutUint64(s.idPrefix[:], s.rng.Uint64())
	s.faults = cfg.Faults
	s.banks = make([]bankEntry, len(cfg.Banks))
	for i, b := range cfg.Banks {
		s.banks[i] = bankEntry{id: BankID(b.Code), code: b.Code, name: b.Name}
		s.bankByID[s.banks[i].id] = &s.banks[i]
		s.bankByCode[b.Code] = &s.banks[i]
	}
	now := s.clock.Now()
	for _, a := range cfg.Accounts {
		if a.ID == "" {
			return nil, errors.New("wompitest: an account has no ID")
		}
		if _, ok := s.bankByCode[a.BankCode]; !ok {
			return nil, fmt.Errorf("wompitest: account %s: unknown bank code %q", a.ID, a.BankCode)
		}
		if a.Status == "" {
			a.Status = wompi.AccountActive
		}
		if a.DailyLimitInCents <= 0 {
			a.DailyLimitInCents = cfg.ClientDailyLimitInCents
		}
		s.accounts[a.ID] = &account{Account: a, updatedAt: now}
		s.accountList = append(s.accountList, a.ID)
	}
	s.hooks = newHookQueue(s)
	s.hooks.setURL(cfg.WebhookURL)
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
// when the test ends. With the real clock it also runs the settle loop.
// Point a wompi.Client at BaseURL().
//
// With WOMPITEST_PUBLISHED_ONLY=1 in the environment every test server runs
// with Config.PublishedOnly: the suites above the simulator then prove that
// the pipeline needs nothing the real API does not publish (make
// test-published).
func NewTestServer(tb TB, cfg Config) *Server {
	tb.Helper()
	if os.Getenv("WOMPITEST_PUBLISHED_ONLY") == "1" {
		cfg.PublishedOnly = true
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("wompitest: %v", err)
	}
	s.runMu.Lock()
	s.testSrv = httptest.NewServer(s.handler)
	s.url = s.testSrv.URL
	s.runMu.Unlock()
	s.startLoop()
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Handler returns the HTTP handler: the API under /v1 and the debug
// endpoints under /_sim.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on addr (e.g. "127.0.0.1:8089", or ":0") and serves in the
// background; with the real clock it also runs the settle loop.
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
			s.log.Error("wompisim: serve", "err", err)
		}
	}()
	s.startLoop()
	return nil
}

// URL is the server root once started ("" before); BaseURL is URL + "/v1",
// the value for wompi.Config.BaseURL.
func (s *Server) URL() string {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.url
}

// BaseURL returns URL() + "/v1".
func (s *Server) BaseURL() string { return s.URL() + "/v1" }

// Clock returns the simulator's clock.
func (s *Server) Clock() Clock { return s.clock }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Client returns a wompi.Client for this server with its credentials.
func (s *Server) Client(hc *http.Client) *wompi.Client {
	c, err := wompi.New(wompi.Config{BaseURL: s.BaseURL(), APIKey: s.cfg.APIKey, PrincipalID: s.cfg.PrincipalID, HTTPClient: hc})
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
		t := time.NewTicker(s.cfg.SettleInterval)
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
	api.HandleFunc("GET /v1/banks", s.handleBanks)
	api.HandleFunc("GET /v1/accounts", s.handleAccounts)
	api.HandleFunc("GET /v1/limits", s.handleLimits)
	api.HandleFunc("POST /v1/payouts", s.handleCreate)
	api.HandleFunc("POST /v1/payouts/file", s.handleCreateFile)
	api.HandleFunc("GET /v1/payouts", s.handleListPayouts)
	api.HandleFunc("GET /v1/payouts/{id}", s.handleGetPayout)
	api.HandleFunc("GET /v1/payouts/{id}/transactions", s.handlePayoutTransactions)
	api.HandleFunc("GET /v1/payouts/{id}/transactions/{txId}", s.handleGetTransaction)
	api.HandleFunc("GET /v1/transactions/{reference}", s.handleTransactionsByRef)
	api.HandleFunc("GET /v1/reports/payouts", s.handleReports)
	api.HandleFunc("GET /v1/reports/presigned_url", s.handlePresigned)
	api.HandleFunc("GET /v1/health", s.handleHealth)
	api.HandleFunc("POST /v1/accounts/balance-recharge", s.handleRecharge)
	api.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, wompi.CodeNotFound, "no such endpoint")
	})

	root := http.NewServeMux()
	root.Handle("/v1/", s.apiMiddleware(api))
	s.debugRoutes(root)
	return root
}

// apiMiddleware enforces the credentials, then applies the latency and
// error faults.
func (s *Server) apiMiddleware(next http.Handler) http.Handler {
	key, principal := []byte(s.cfg.APIKey), []byte(s.cfg.PrincipalID)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := []byte(r.Header.Get(wompi.HeaderAPIKey))
		p := []byte(r.Header.Get(wompi.HeaderPrincipalID))
		okK := subtle.ConstantTimeCompare(k, key)
		okP := subtle.ConstantTimeCompare(p, principal)
		if okK&okP != 1 {
			s.writeError(w, http.StatusUnauthorized, wompi.CodeUnauthorized, "missing or invalid x-api-key / user-principal-id")
			return
		}
		d, fail := s.rollRequestFaults(r.URL.Path != "/v1/health")
		if d > 0 {
			// Read the body first: only then does net/http watch the
			// connection and cancel the context when the client leaves.
			if r.Body != nil {
				body, err := readBody(r)
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
		switch fail {
		case http.StatusServiceUnavailable:
			s.writeError(w, fail, wompi.CodeServiceUnavailable, "service unavailable (simulated)")
			return
		case http.StatusTooManyRequests:
			s.writeError(w, fail, wompi.CodeTooManyRequests, "too many requests (simulated)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// envelope is the answer wrapper [sdk].
type envelope struct {
	Status  int    `json:"status"`
	Code    string `json:"code,omitempty"`
	Message any    `json:"message,omitempty"`
	Meta    struct {
		TraceID string `json:"trace_id"`
	} `json:"meta"`
	Data any `json:"data,omitempty"`
}

func (s *Server) traceID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.traceSeq.Add(1))
	return "sim-" + hex.EncodeToString(s.idPrefix[:4]) + hex.EncodeToString(b[:])
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("wompisim: encode answer", "err", err)
		http.Error(w, `{"status":500,"code":"INTERNAL","message":"encode"}`, http.StatusInternalServerError)
		return
	}
	writeBytes(w, status, b)
}

// writeBytes answers b, a JSON document, with status.
func writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeData answers the wrapped envelope.
func (s *Server) writeData(w http.ResponseWriter, status int, data any) {
	env := envelope{Status: status, Message: "OK", Data: data}
	env.Meta.TraceID = s.traceID()
	s.writeJSON(w, status, env)
}

func (s *Server) writeError(w http.ResponseWriter, status int, code string, msg string) {
	env := envelope{Status: status, Code: code, Message: msg}
	env.Meta.TraceID = s.traceID()
	s.writeJSON(w, status, env)
}

// writeValidation answers 400 with message as a list [sdk].
func (s *Server) writeValidation(w http.ResponseWriter, msgs []string) {
	env := envelope{Status: http.StatusBadRequest, Code: wompi.CodeValidation, Message: msgs}
	env.Meta.TraceID = s.traceID()
	s.writeJSON(w, http.StatusBadRequest, env)
}

// newID returns a UUID-shaped id: the instance prefix and a counter.
func (s *Server) newID() string {
	var out [36]byte
	return string(s.appendID(out[:0]))
}

// idLen is the length of an id newID gives.
const idLen = 36

// newIDs gives n new ids in one string, the i-th at [i*idLen, (i+1)*idLen):
// a batch's transactions get theirs with one allocation.
func (s *Server) newIDs(n int) string {
	var sb strings.Builder
	sb.Grow(n * idLen)
	var buf [idLen]byte
	for range n {
		sb.Write(s.appendID(buf[:0]))
	}
	return sb.String()
}

// appendID appends a new id: a version 4 UUID whose last 8 bytes are the
// sequence.
func (s *Server) appendID(dst []byte) []byte {
	var b [16]byte
	copy(b[:8], s.idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], s.seq.Add(1))
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return append(dst, out[:]...)
}

const simTimeLayout = "2006-01-02T15:04:05.000Z"

func fmtTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(simTimeLayout)
	return &s
}
