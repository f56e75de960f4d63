package localrun

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress shows how far the run is: a redrawn bar with rates on a
// terminal, a plain line every few seconds in a pipe.
type progress struct {
	w         io.Writer
	terminal  bool
	total     int
	start     time.Time
	lastRate  time.Time
	lastN     int
	rate      float64
	lastPrint time.Time
	drawn     bool
}

func newProgress(w io.Writer, terminal bool, total int) *progress {
	now := time.Now()
	return &progress{w: w, terminal: terminal, total: total, start: now, lastRate: now}
}

func (p *progress) update(settled, submitted, payouts int) {
	now := time.Now()
	if dt := now.Sub(p.lastRate).Seconds(); dt >= 1 {
		p.rate = float64(settled-p.lastN) / dt
		p.lastRate, p.lastN = now, settled
	}
	elapsed := now.Sub(p.start).Round(100 * time.Millisecond)
	avg := float64(submitted) / max(now.Sub(p.start).Seconds(), 0.001)
	pct := 100 * settled / max(p.total, 1)
	if p.terminal {
		const width = 30
		filled := width * settled / max(p.total, 1)
		fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d settled | %d submitted in %d batches | %.0f settled/s | %.0f submitted/s | %s ",
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, settled, p.total,
			submitted, payouts, p.rate, avg, elapsed)
		p.drawn = true
		return
	}
	if now.Sub(p.lastPrint) >= 2*time.Second || settled == p.total {
		fmt.Fprintf(p.w, "progress: %d%% %d/%d settled, %d submitted in %d batches, %.0f settled/s, %.0f submitted/s, %s\n",
			pct, settled, p.total, submitted, payouts, p.rate, avg, elapsed)
		p.lastPrint = now
	}
}

func (p *progress) done() {
	if p.terminal && p.drawn {
		fmt.Fprintln(p.w)
	}
}
