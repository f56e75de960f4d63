package dispatch

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// bankDirectory resolves Colombian bank codes to Wompi bankIds through a
// cached GET /banks. Safe for concurrent use.
type bankDirectory struct {
	e       *Engine
	mu      sync.Mutex
	byCode  map[string]string
	fetched time.Time // wall clock
	missAt  time.Time // last refresh caused by an unknown code
}

// missRefreshEvery bounds refreshes triggered by unknown codes.
func (d *bankDirectory) missRefreshEvery() time.Duration {
	return min(time.Minute, d.e.cfg.BanksRefresh)
}

// resolve returns the bankId of each code ("" for an unknown one). A stale
// or missing table is fetched first; an unknown code refreshes it once (at
// most once a minute). An error is returned only when no table is known.
func (d *bankDirectory) resolve(ctx context.Context, codes []string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byCode == nil || time.Since(d.fetched) > d.e.cfg.BanksRefresh {
		if err := d.refresh(ctx); err != nil && d.byCode == nil {
			return nil, err
		}
	}
	ids := make([]string, len(codes))
	missing := false
	for i, c := range codes {
		ids[i] = d.byCode[c]
		missing = missing || ids[i] == ""
	}
	if missing && time.Since(d.missAt) > d.missRefreshEvery() && time.Since(d.fetched) > 0 {
		d.missAt = time.Now()
		if err := d.refresh(ctx); err == nil {
			for i, c := range codes {
				if ids[i] == "" {
					ids[i] = d.byCode[c]
				}
			}
		}
	}
	return ids, nil
}

func (d *bankDirectory) refresh(ctx context.Context) error {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, d.e.cfg.HTTPTimeout)
	banks, err := d.e.wompi.Banks(cctx)
	cancel()
	d.e.m.observe("banks", start, err)
	if err != nil {
		d.e.log.Warn("dispatch: GET /banks failed", "err", err)
		return err
	}
	m := make(map[string]string, len(banks))
	for _, b := range banks {
		if b.Code != "" && b.ID != "" {
			m[b.Code] = b.ID
		}
	}
	d.byCode, d.fetched = m, time.Now()
	return nil
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
// interval.
func (h *healthGate) wait(ctx context.Context, log *slog.Logger) error {
	if !h.unhealthy.Load() {
		return nil
	}
	h.e.m.healthWaits.Inc()
	log.Info("dispatch: waiting for Wompi to be healthy before posting")
	d := h.e.cfg.RetryBase
	for h.unhealthy.Load() {
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
