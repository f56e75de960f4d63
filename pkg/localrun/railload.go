package localrun

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// ErrUnknownRail is returned by LoadMixFor (and so by RunLoad and
// payouts-local --rail) for a rail the load run cannot pay through.
var ErrUnknownRail = errors.New("unknown rail")

// LoadMixFor returns the load run's mix for a rail: "" or "wompi" is
// LoadMix (immediate Wompi payouts); "smartfastpay" and "wepayout" make
// every request a single payout of that rail, valid for it (an 11-digit
// document and a Colombian mobile for SmartFastPay; BRL, a CPF and a PIX
// key for WEpayout). Any other name is ErrUnknownRail.
func LoadMixFor(name string) (Mix, error) {
	switch rail.Name(name) {
	case "", rail.Wompi:
		return LoadMix, nil
	case rail.SmartFastPay:
		return Mix{SmartFastPay: 100}, nil
	case rail.WEpayout:
		return Mix{WEpayout: 100}, nil
	}
	return Mix{}, fmt.Errorf("%w %q: want wompi, smartfastpay or wepayout", ErrUnknownRail, name)
}

// child is a process the load run started, named by its role.
type child struct {
	role string
	cmd  *exec.Cmd
}

// cpuSample is the CPU time used so far by each part of a load run.
type cpuSample struct {
	workers  time.Duration            // this process: the three workers, the publisher and the tally
	redis    time.Duration            // redis-server, from INFO cpu (-1: unknown)
	children map[string]time.Duration // by role, from /proc/<pid>/stat
	heap     heapSample               // this process's allocations so far
	// yardstick is cpustat.Yardstick's CPU time, taken just outside the
	// measured window (before the first sample, after the last).
	yardstick time.Duration
}

// heapSample is the workers' process's heap allocations and garbage
// collections so far (runtime/metrics): unlike CPU time, a count the
// machine's speed does not move.
type heapSample struct {
	objects, bytes, gcs uint64
}

var heapMetrics = []string{"/gc/heap/allocs:objects", "/gc/heap/allocs:bytes", "/gc/cycles/total:gc-cycles"}

func sampleHeap() heapSample {
	ms := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		ms[i].Name = name
	}
	metrics.Read(ms)
	var v [3]uint64
	for i := range ms {
		if ms[i].Value.Kind() == metrics.KindUint64 {
			v[i] = ms[i].Value.Uint64()
		}
	}
	return heapSample{objects: v[0], bytes: v[1], gcs: v[2]}
}

// sampleCPU reads the CPU time of the workers' process, of Redis and of the
// load run's children.
func (s *Stack) sampleCPU(ctx context.Context, children []child) cpuSample {
	c := cpuSample{workers: cpustat.Self(), redis: s.redisCPU(ctx), children: map[string]time.Duration{}, heap: sampleHeap()}
	for _, ch := range children {
		c.children[ch.role] = procCPU(ch.cmd.Process.Pid)
	}
	return c
}

// redisCPU is redis-server's CPU so far (cpustat.Redis), -1 when it cannot
// be read: the whole server's, so a REDIS_URL shared with other work counts
// that work too.
func (s *Stack) redisCPU(ctx context.Context) time.Duration {
	c, err := s.Redis.Client()
	if err != nil {
		return -1
	}
	defer c.Close()
	d, err := cpustat.Redis(ctx, c)
	if err != nil {
		return -1
	}
	return d
}

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat (100 on every architecture Go supports).
const clockTicks = 100

// procCPU reads a live process's utime + stime from /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// railLedger streams a single-payout simulator child's GET /_sim/ledger
// (SmartFastPay: "transactions" by our id; WEpayout: "invoices" by our
// requestId) into v: the amounts of each request of the run, the requests
// created more than once, and how many of the run's requests the rail
// accepted.
func (t *Tally) railLedger(ctx context.Context, name rail.Name, baseURL string, v *ledgerView) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/_sim/ledger", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errNoLedger, name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s GET /_sim/ledger: %s", errNoLedger, name, resp.Status)
	}
	bad := func(err error) error { return fmt.Errorf("%w: %s: %v", errNoLedger, name, err) }
	v.accepted[name] += 0 // read, even if it accepted nothing
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	if _, err := dec.Token(); err != nil { // {
		return bad(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		if k != "transactions" && k != "invoices" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return bad(err)
			}
			continue
		}
		if _, err := dec.Token(); err != nil { // {
			return bad(err)
		}
		for dec.More() {
			id, err := dec.Token()
			if err != nil {
				return bad(err)
			}
			var e struct {
				Accepted       int     `json:"accepted"`
				AmountsInCents []int64 `json:"amountsInCents"`
			}
			if err := dec.Decode(&e); err != nil {
				return bad(err)
			}
			ref, _ := id.(string)
			i, ok := t.m.Index(ref)
			if !ok || i >= len(v.amounts) {
				continue
			}
			v.accepted[name]++
			if e.Accepted > 1 {
				v.paidTwice = append(v.paidTwice, ref)
			}
			v.amounts[i] = e.AmountsInCents
		}
		if _, err := dec.Token(); err != nil { // }
			return bad(err)
		}
	}
	return nil
}
