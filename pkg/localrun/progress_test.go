package localrun

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// Each redraw starts at the line's start and erases to its end, so a line
// shorter than the one before leaves no stray characters; the count says
// what it counts.
func TestBarLineClearsTheLine(t *testing.T) {
	got := barLine(1500, 2000, 1900, 12, 250, 300, 3*time.Second)
	want := "\r\x1b[K[######################........]  75% 1500/2000 final or scheduled | 1900 submitted in 12 batches | 250 done/s | 300 submitted/s | 3s"
	if got != want {
		t.Fatalf("barLine =\n%q\nwant\n%q", got, want)
	}
	if strings.Contains(got, "settled") {
		t.Fatalf("the bar calls scheduled and rejected requests settled: %q", got)
	}
}

// A notice erases the bar first: no stale bar and no blank line above it.
func TestNoticeErasesTheBar(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, true, 10)
	p.update(3, 5, 1)
	out.Reset()
	p.notice("payouts-local: recharged")
	if got := out.String(); got != "\r\x1b[Kpayouts-local: recharged\n" {
		t.Fatalf("notice wrote %q", got)
	}
}

// The ledger row is an amount: it shows no count of 0.
func TestReportLedgerRowHasNoCount(t *testing.T) {
	var out bytes.Buffer
	(&Report{LedgerCents: 123456}).Print(&out)
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "rails' ledger amount") {
			if strings.Fields(line)[3] == "0" {
				t.Fatalf("ledger row shows a count: %q", line)
			}
			return
		}
	}
	t.Fatalf("no ledger row in\n%s", out.String())
}

// The workers' Go memory settings stay with the workers: the harness's
// children (Kafka, the simulators) run on the defaults, and the report
// says which settings its peak RSS was taken under.
func TestLoadRunMemorySettingsAreTheWorkers(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "GOMEMLIMIT=240MiB", "GOGC=50", "GOGCX=1", "HOME=/root"})
	if strings.Join(got, " ") != "PATH=/bin GOGCX=1 HOME=/root" {
		t.Fatalf("children's env: %q", got)
	}
	l := &LoadFigures{MemoryLimit: math.MaxInt64}
	if s := l.memorySettings(); s != "no GOMEMLIMIT, GOGC 100" {
		t.Fatalf("default settings reported as %q", s)
	}
	l = &LoadFigures{MemoryLimit: 240 << 20, GOGC: "50"}
	if s := l.memorySettings(); s != "GOMEMLIMIT 240 MiB, GOGC 50" {
		t.Fatalf("settings reported as %q", s)
	}
}
