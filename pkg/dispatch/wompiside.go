package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// bankIDs resolves bank codes to Wompi bankIds through the rail's bank
// directory (rail.BankDirectory): "" for a code Wompi does not know; an
// error only when no table is known. A GET /banks it starts is shared by
// every batch that needs it, runs under the engine's life (not the
// caller's ctx), each bounded by HTTPTimeout, and is observed as endpoint
// "banks".
func (e *Engine) bankIDs(ctx context.Context, codes []string) ([]string, error) {
	return e.batchRail.BankIDs(ctx, rail.Background{Life: e.hard, Timeout: e.cfg.HTTPTimeout, Go: e.reads.Go,
		Observe: e.observeRead}, codes)
}

// observeRead records a read the rail made on its own (GET /banks).
func (e *Engine) observeRead(op string, start time.Time, err error) {
	e.m.observe(op, start, err)
	if err != nil && e.hard.Err() == nil {
		e.log.Warn("dispatch: GET /"+op+" failed", "err", err)
	}
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
	status, err := h.e.batchRail.Health(cctx)
	cancel()
	h.e.m.observe("health", start, err)
	if err != nil {
		if ctx.Err() == nil {
			h.e.log.Warn("dispatch: GET /health failed; keeping the last known state", "err", err)
		}
		return
	}
	bad := status == rail.Unhealthy
	if h.unhealthy.Swap(bad) != bad {
		if bad {
			h.e.log.Warn("dispatch: Wompi is UNHEALTHY: posting paused", "status", string(status))
		} else {
			h.e.log.Info("dispatch: Wompi is available again: posting resumes", "status", string(status))
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
