package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// bankDirectory resolves Colombian bank codes to Wompi bankIds through a
// cached GET /banks. Safe for concurrent use. The mutex guards the cached
// table only: GET /banks runs outside it, one at a time (a single flight
// that every caller who needs it joins), so a slow or hanging Wompi never
// blocks a batch that the cached table can serve.
type bankDirectory struct {
	e       *Engine
	mu      sync.Mutex
	byCode  map[string]string // replaced whole by a refresh, never mutated
	fetched time.Time         // wall clock
	missAt  time.Time         // last refresh caused by an unknown code
	flight  *bankFlight       // the GET /banks in progress, if any
	wg      sync.WaitGroup    // refresh goroutines
}

// bankFlight is one GET /banks; done is closed when it ended, err is its
// outcome (read after done).
type bankFlight struct {
	done chan struct{}
	err  error
}

// missRefreshEvery bounds refreshes triggered by unknown codes.
func (d *bankDirectory) missRefreshEvery() time.Duration {
	return min(time.Minute, d.e.cfg.BanksRefresh)
}

// resolve returns the bankId of each code ("" for an unknown one). A
// missing table is fetched first (the caller waits); a stale one is served
// while a refresh runs in the background. An unknown code waits for a
// refresh (the one in flight, or a new one at most once a minute) before it
// is reported unknown. An error is returned only when no table is known.
func (d *bankDirectory) resolve(ctx context.Context, codes []string) ([]string, error) {
	d.mu.Lock()
	table := d.byCode
	var wait *bankFlight
	switch {
	case table == nil:
		wait = d.startLocked()
	case time.Since(d.fetched) > d.e.cfg.BanksRefresh:
		d.startLocked() // serve the last good table meanwhile
	}
	d.mu.Unlock()
	if wait != nil {
		if err := d.await(ctx, wait); err != nil {
			return nil, err
		}
		if table = d.table(); table == nil {
			return nil, wait.err
		}
	}

	ids := make([]string, len(codes))
	missing := false
	for i, c := range codes {
		ids[i] = table[c]
		missing = missing || ids[i] == ""
	}
	if !missing || wait != nil {
		// A table this call waited for is as fresh as it gets.
		return ids, nil
	}
	d.mu.Lock()
	wait = d.flight
	if wait == nil && time.Since(d.missAt) > d.missRefreshEvery() {
		d.missAt = time.Now()
		wait = d.startLocked()
	}
	d.mu.Unlock()
	if wait == nil {
		return ids, nil
	}
	if err := d.await(ctx, wait); err != nil {
		return nil, err
	}
	table = d.table()
	for i, c := range codes {
		if ids[i] == "" {
			ids[i] = table[c]
		}
	}
	return ids, nil
}

// table returns the current table.
func (d *bankDirectory) table() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byCode
}

// await waits for f, or for ctx: the caller's batch may stop waiting, the
// refresh goes on for the others.
func (d *bankDirectory) await(ctx context.Context, f *bankFlight) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// startLocked returns the refresh in flight, or starts one. d.mu is held.
// The refresh is bound by HTTPTimeout and by the engine's life, not by the
// context of the caller that happened to start it.
func (d *bankDirectory) startLocked() *bankFlight {
	if d.flight != nil {
		return d.flight
	}
	f := &bankFlight{done: make(chan struct{})}
	d.flight = f
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		m, err := d.fetch(d.e.hard)
		d.mu.Lock()
		if err == nil {
			d.byCode, d.fetched = m, time.Now()
		}
		d.flight = nil
		d.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// fetch reads GET /banks into a code -> bankId table. It holds no lock.
func (d *bankDirectory) fetch(ctx context.Context) (map[string]string, error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, d.e.cfg.HTTPTimeout)
	banks, err := d.e.wompi.Banks(cctx)
	cancel()
	d.e.m.observe("banks", start, err)
	if err != nil {
		if ctx.Err() == nil {
			d.e.log.Warn("dispatch: GET /banks failed", "err", err)
		}
		return nil, err
	}
	m := make(map[string]string, len(banks))
	for _, b := range banks {
		if b.Code != "" && b.ID != "" {
			m[b.Code] = b.ID
		}
	}
	return m, nil
}

// healthGate follows GET /health in the background. While Wompi says
// UNHEALTHY, posting pauses; PARTIAL_OUTAGE does not pause. A failed check
// keeps the last known state.
type healthGate struct {
	e         *Engine
	unhealthy atomic.Bool
}

func (h *healthGate) check(ctx context.Context) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, h.e.cfg.HTTPTimeout)
	hs, err := h.e.wompi.Health(cctx)
	cancel()
	h.e.m.observe("health", start, err)
	if err != nil {
		if ctx.Err() == nil {
			h.e.log.Warn("dispatch: GET /health failed; keeping the last known state", "err", err)
		}
		return
	}
	bad := hs.Status == wompi.HealthUnhealthy
	if h.unhealthy.Swap(bad) != bad {
		if bad {
			h.e.log.Warn("dispatch: Wompi is UNHEALTHY: posting paused", "status", hs.Status)
		} else {
			h.e.log.Info("dispatch: Wompi is available again: posting resumes", "status", hs.Status)
		}
	}
	if bad {
		h.e.m.unhealthy.Set(1)
	} else {
		h.e.m.unhealthy.Set(0)
	}
}

func (h *healthGate) run(ctx context.Context) {
	t := time.NewTicker(h.e.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.check(ctx)
		}
	}
}

// wait blocks while Wompi is UNHEALTHY, backing off up to the check
// interval; errPatience when it still is at deadline.
func (h *healthGate) wait(ctx context.Context, log *slog.Logger, deadline time.Time) error {
	if !h.unhealthy.Load() {
		return nil
	}
	h.e.m.healthWaits.Inc()
	log.Info("dispatch: waiting for Wompi to be healthy before posting")
	d := h.e.cfg.RetryBase
	for h.unhealthy.Load() {
		if time.Now().Add(d).After(deadline) {
			return fmt.Errorf("%w: Wompi reports UNHEALTHY", errPatience)
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		d = min(2*d, h.e.cfg.HealthInterval)
	}
	return nil
}

// backoff returns the capped exponential delay with full jitter for the
// given attempt (0-based).
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.RetryBase << min(attempt, 20)
	if d <= 0 || d > e.cfg.RetryMax {
		d = e.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
