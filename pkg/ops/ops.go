package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a slog logger writing JSON (format "json", the
// production default) or text ("text") at the given level ("debug", "info",
// "warn", "error").
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, errors.New("level must be debug, info, warn or error")
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json", "":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, errors.New("format must be json or text")
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors, so every worker exposes the same runtime metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Health is the liveness and readiness state a worker reports. The zero
// value is live and not ready.
type Health struct {
	ready    atomic.Bool
	draining atomic.Bool
	reason   atomic.Pointer[string]
}

// SetReady marks the worker ready (or not) to take traffic.
func (h *Health) SetReady(ok bool) {
	h.reason.Store(nil)
	h.ready.Store(ok)
}

// SetFailing marks the worker ready when err is nil, else not ready with
// err as the reason /readyz prints (a dependency's name and error: no
// personal data ever reaches a dependency error).
func (h *Health) SetFailing(err error) {
	if err == nil {
		h.SetReady(true)
		return
	}
	msg := err.Error()
	h.reason.Store(&msg)
	h.ready.Store(false)
}

// SetDraining marks the worker as shutting down: /readyz fails at once so a
// load balancer stops sending, while /healthz stays up.
func (h *Health) SetDraining() { h.draining.Store(true) }

// Ready reports whether the worker is ready and not draining.
func (h *Health) Ready() bool { return h.ready.Load() && !h.draining.Load() }

// Handler serves /metrics from reg, /healthz (always 200 while the process
// serves) and /readyz (200 when h is ready, else 503).
func Handler(reg *prometheus.Registry, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.Ready() {
			msg := "not ready"
			if h.draining.Load() {
				msg = "not ready: draining"
			} else if r := h.reason.Load(); r != nil {
				msg = "not ready: " + *r
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// Dependency is something a worker needs to do its job (Redis, Kafka):
// while its Check fails, /readyz answers 503 naming it.
type Dependency struct {
	Name  string
	Check func(ctx context.Context) error
}

// dependencyTimeout bounds one dependency check.
const dependencyTimeout = 2 * time.Second

// CheckDependencies runs each check in turn, each bounded by two seconds,
// and returns the first failure as "name: error", or nil.
func CheckDependencies(ctx context.Context, deps []Dependency) error {
	for _, d := range deps {
		cctx, cancel := context.WithTimeout(ctx, dependencyTimeout)
		err := d.Check(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	return nil
}

// NewServer returns an http.Server with timeouts that a slow or malicious
// client cannot hold open (no slowloris): 5 s to read headers, 15 s for a
// whole request, 15 s to write, 60 s idle, 64 KiB of headers.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve listens on srv.Addr and serves until ctx is done, then shuts down
// within grace. It returns the bound address on ready (useful with port 0)
// through the started callback, which may be nil.
func Serve(ctx context.Context, srv *http.Server, grace time.Duration, started func(net.Addr)) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	if started != nil {
		started(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return srv.Shutdown(sctx)
}

// SignalContext returns a context cancelled on SIGTERM or SIGINT: the start
// of a graceful drain.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// Mask hides personal data for logs and errors: it keeps at most the last
// four characters of a value longer than eight, and nothing of a shorter
// one. Account numbers, legal ids and emails always go through it.
func Mask(s string) string {
	if len(s) <= 8 {
		return "****"
	}
	return "****" + s[len(s)-4:]
}

// DuplicateRequests is payouts_duplicate_requests_total{stage}: republished
// copies of a request that were dropped (to the DLQ, never to the status
// topic), by the stage that caught them. Every worker that catches copies
// counts on the same series; it is registered once per registry.
func DuplicateRequests(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "payouts", Name: "duplicate_requests_total",
		Help: "Republished copies of a request that were dropped, by the stage that caught them (ingest, dispatcher). A copy never adds an event to payouts.status.v1: it goes to the DLQ with header error=DUPLICATE_REQUEST."},
		[]string{"stage"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}
