package track

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// pendingAges keeps, per rail, the oldest age a poll of this replica found
// a payout still not final at, over the last one to two windows: the
// gauge payouts_tracker_oldest_pending_payout_age_seconds. A payout not
// final is polled at least every POLL_MAX_BACKOFF (the window is twice
// that), so one that stays pending keeps the gauge up, and one that ended
// (or moved to another replica) leaves it within two windows. Memory is
// two figures per rail, whatever the number of payouts in flight.
type pendingAges struct {
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex
	start     time.Time // of the current window
	cur, prev map[rail.Name]time.Duration
	desc      *prometheus.Desc
}

func newPendingAges(window time.Duration, now func() time.Time) *pendingAges {
	return &pendingAges{window: window, now: now, cur: map[rail.Name]time.Duration{}, prev: map[rail.Name]time.Duration{},
		desc: prometheus.NewDesc("payouts_tracker_oldest_pending_payout_age_seconds",
			"The oldest age (since its submission) at which a poll of this replica found a payout still not final, over the last one to two twice-POLL_MAX_BACKOFF windows, by rail; 0 when none. A Wompi batch scheduled for a later dispersion is left out until then, and aged from it.",
			[]string{"rail"}, nil)}
}

// roll moves the windows on to at; the caller holds mu.
func (p *pendingAges) roll(at time.Time) {
	if p.start.IsZero() {
		p.start = at
	}
	for !at.Before(p.start.Add(p.window)) {
		if at.Before(p.start.Add(2 * p.window)) {
			p.prev, p.cur = p.cur, map[rail.Name]time.Duration{}
			p.start = p.start.Add(p.window)
			continue
		}
		// Two windows or more without a roll: both are old.
		p.prev, p.cur, p.start = map[rail.Name]time.Duration{}, map[rail.Name]time.Duration{}, at
	}
}

// observe records that a poll found a payout of rail n still not final
// at age.
func (p *pendingAges) observe(n rail.Name, age time.Duration) {
	if age < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roll(p.now())
	p.cur[n] = max(p.cur[n], age)
}

// oldest returns the rail's figure now.
func (p *pendingAges) oldest(n rail.Name) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.roll(p.now())
	return max(p.cur[n], p.prev[n])
}

func (p *pendingAges) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect reports every rail, 0 for one with no payout pending.
func (p *pendingAges) Collect(ch chan<- prometheus.Metric) {
	for _, n := range []rail.Name{rail.Wompi, rail.SmartFastPay, rail.WEpayout} {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, p.oldest(n).Seconds(), string(n))
	}
}
