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
		fmt.Fprint(p.w, barLine(settled, p.total, submitted, payouts, p.rate, avg, elapsed))
		p.drawn = true
		return
	}
	if now.Sub(p.lastPrint) >= 2*time.Second || settled == p.total {
		fmt.Fprintf(p.w, "progress: %d%% %d/%d final or scheduled, %d submitted in %d batches, %.0f final or scheduled/s, %.0f submitted/s, %s\n",
			pct, settled, p.total, submitted, payouts, p.rate, avg, elapsed)
		p.lastPrint = now
	}
}

// clearLine returns to the start of the line and erases it to its end
// (ANSI "erase in line"), so a shorter redraw leaves nothing behind.
const clearLine = "\r\x1b[K"

// barLine renders the terminal bar: done counts the requests that need
// nothing more in this run (a final status, or SCHEDULED and waiting for
// their dispersion day), said as such rather than "settled".
func barLine(done, total, submitted, payouts int, rate, avg float64, elapsed time.Duration) string {
	const width = 30
	filled := min(width*done/max(total, 1), width)
	return fmt.Sprintf("%s[%s%s] %3d%% %d/%d final or scheduled | %d submitted in %d batches | %.0f done/s | %.0f submitted/s | %s",
		clearLine, strings.Repeat("#", filled), strings.Repeat(".", width-filled), 100*done/max(total, 1), done, total,
		submitted, payouts, rate, avg, elapsed)
}

// notice prints one line above the bar: on a terminal the bar is erased
// first (no stale bar, no blank line) and redrawn by the next update.
func (p *progress) notice(msg string) {
	if p.terminal && p.drawn {
		fmt.Fprint(p.w, clearLine)
		p.drawn = false
	}
	fmt.Fprintln(p.w, msg)
}

func (p *progress) done() {
	if p.terminal && p.drawn {
		fmt.Fprintln(p.w)
	}
}
