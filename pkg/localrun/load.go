package localrun

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// LoadFigures are the load run's measurements.
type LoadFigures struct {
	// Rail is the rail every request went to: "wompi" (batches) or a
	// single-payout rail (one payout per request).
	Rail           string
	Requests       int
	Batches        int
	Publish        time.Duration // producing every request
	Pipeline       time.Duration // first publish to last SUBMITTED
	RequestsPerSec float64
	BatchesPerSec  float64
	// SteadyPerSec is the tally's rate between the tenth and ninetieth
	// percentile of the SUBMITTED times (Report.SteadyPerSec).
	SteadyPerSec    float64
	RedisCommands   float64 // dispatcher Redis commands per batch
	RedisRoundTrips float64 // dispatcher Redis round trips per batch
	PeakRSS         int64   // bytes, this process (the workers)
	// MemoryLimit is the workers' process's soft memory limit (GOMEMLIMIT;
	// math.MaxInt64 when none) and GOGC its GC setting ("" for the default).
	MemoryLimit       int64
	GOGC              string
	ChildRSS          map[string]int64
	RawConsumePerSec  float64 // a plain franz-go group consume of the request topic
	PipelineOverRawPc float64
	// CPU time spent from the first publish to the last SUBMITTED: the
	// workers' process (the three workers, plus the publisher and the
	// tally of the load run itself), redis-server (INFO cpu, before and
	// after; -1 when unknown) and each child process by role (kfake, the
	// simulators).
	WorkersCPU, RedisCPU time.Duration
	ChildCPU             map[string]time.Duration
	// LoadGenCPU is the part of WorkersCPU spent by the load run itself
	// (its goroutines' share of a CPU profile of the window, cpusplit.go);
	// -1 when not measured.
	LoadGenCPU time.Duration
	// HeapObjects and HeapBytes are what the workers' process allocated on
	// the heap, and GCCycles the collections it ran, over the same window:
	// the three workers and the load run's own part together.
	HeapObjects, HeapBytes, GCCycles uint64
	// Yardstick is the CPU time of cpustat.Yardstick's fixed work, just
	// before the first publish and just after the last SUBMITTED: how fast
	// the machine was, so that figures of runs on different machines, or
	// hours, are compared beside it (0 when not measured).
	Yardstick [2]time.Duration
}

// PipelineWorkersCPU is WorkersCPU without the load generator's part (all
// of it when that part was not measured).
func (l *LoadFigures) PipelineWorkersCPU() time.Duration {
	if l.LoadGenCPU < 0 {
		return l.WorkersCPU
	}
	return l.WorkersCPU - l.LoadGenCPU
}

// perRequest is d per request, in microseconds.
func (l *LoadFigures) perRequest(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(max(1, l.Requests))
}

// perRequestCount is n per request.
func (l *LoadFigures) perRequestCount(n uint64) float64 {
	return float64(n) / float64(max(1, l.Requests))
}

// SimulatorCPU sums the CPU of the simulator children (every child but
// kfake).
func (l *LoadFigures) SimulatorCPU() time.Duration {
	var sum time.Duration
	for role, d := range l.ChildCPU {
		if role != "kfake" {
			sum += d
		}
	}
	return sum
}

// Print writes the figures.
func (l *LoadFigures) Print(w io.Writer) {
	unit := "request"
	if l.Rail != "" && l.Rail != "wompi" {
		unit = "payout"
	}
	fmt.Fprintf(w, "\nLoad run (%s): %d requests in %d batches\n", l.Rail, l.Requests, l.Batches)
	fmt.Fprintf(w, "  publish                         %v (%.0f requests/s)\n", l.Publish.Round(time.Millisecond), float64(l.Requests)/l.Publish.Seconds())
	fmt.Fprintf(w, "  pipeline (publish -> SUBMITTED)  %v: %.0f %ss/s, %.1f batches/s\n", l.Pipeline.Round(time.Millisecond), l.RequestsPerSec, unit, l.BatchesPerSec)
	if l.SteadyPerSec > 0 {
		fmt.Fprintf(w, "  steady (10-90%% of SUBMITTED)    %.0f %ss/s (without the start, e.g. a first start's grace, and the tail)\n", l.SteadyPerSec, unit)
	}
	fmt.Fprintf(w, "  dispatcher Redis per batch       %.1f commands, %.1f round trips\n", l.RedisCommands, l.RedisRoundTrips)
	fmt.Fprintf(w, "  CPU per %-7s                  (publish -> SUBMITTED)\n", unit)
	fmt.Fprintf(w, "    workers' process               %7.1f µs (ingest, dispatcher, tracker, and the load run's publisher and tally)\n", l.perRequest(l.WorkersCPU))
	if l.LoadGenCPU >= 0 {
		fmt.Fprintf(w, "      the load run's own part      %7.1f µs (marketplace, publisher, status follower, tally: CPU-profile labels)\n", l.perRequest(l.LoadGenCPU))
		fmt.Fprintf(w, "      the workers alone            %7.1f µs (the garbage collector's work counted here)\n", l.perRequest(l.PipelineWorkersCPU()))
	} else {
		fmt.Fprintf(w, "      the load run's own part            ? (not measured: another CPU profile was running, or under 1 s of CPU sampled)\n")
	}
	if l.RedisCPU >= 0 {
		fmt.Fprintf(w, "    redis-server                   %7.1f µs (INFO cpu)\n", l.perRequest(l.RedisCPU))
	} else {
		fmt.Fprintf(w, "    redis-server                         ? (INFO cpu unavailable)\n")
	}
	for _, role := range slices.Sorted(maps.Keys(l.ChildCPU)) {
		fmt.Fprintf(w, "    %-16s child           %7.1f µs\n", role, l.perRequest(l.ChildCPU[role]))
	}
	redis := max(0, l.RedisCPU)
	fmt.Fprintf(w, "    workers + Redis                %7.1f µs\n", l.perRequest(l.WorkersCPU+redis))
	fmt.Fprintf(w, "    workers + Redis + simulator    %7.1f µs\n", l.perRequest(l.WorkersCPU+redis+l.SimulatorCPU()))
	if d, ok := l.ChildCPU["kfake"]; ok {
		fmt.Fprintf(w, "    all, with kfake                %7.1f µs\n", l.perRequest(l.WorkersCPU+redis+l.SimulatorCPU()+d))
		if l.LoadGenCPU >= 0 {
			fmt.Fprintf(w, "    all, without the load run's part %5.1f µs\n", l.perRequest(l.PipelineWorkersCPU()+redis+l.SimulatorCPU()+d))
		}
	}
	if l.HeapObjects > 0 {
		fmt.Fprintf(w, "  heap allocations per %-7s    %.1f objects, %.0f bytes (workers' process, with the load run's part; %d GC cycles)\n",
			unit, l.perRequestCount(l.HeapObjects), l.perRequestCount(l.HeapBytes), l.GCCycles)
	}
	if l.Yardstick[0] > 0 {
		fmt.Fprintf(w, "  machine's yardstick (fixed work) %.1f ms of CPU before the run, %.1f ms after (compare runs beside it)\n",
			ms(l.Yardstick[0]), ms(l.Yardstick[1]))
	}
	fmt.Fprintf(w, "  peak RSS (workers' process)      %.1f MiB (%s)\n", float64(l.PeakRSS)/(1<<20), l.memorySettings())
	for _, name := range slices.Sorted(maps.Keys(l.ChildRSS)) {
		rss := l.ChildRSS[name]
		fmt.Fprintf(w, "  peak RSS of the %-15s child %.1f MiB (not the pipeline's)\n", name, float64(rss)/(1<<20))
	}
	if l.RawConsumePerSec == 0 {
		fmt.Fprintf(w, "  raw franz-go consume, same topic not measured (too few records after the first fetch to time)\n")
		return
	}
	fmt.Fprintf(w, "  raw franz-go consume, same topic %.0f records/s\n", l.RawConsumePerSec)
	fmt.Fprintf(w, "  pipeline / raw consume           %.1f%%\n", l.PipelineOverRawPc)
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// memorySettings says under which Go memory settings PeakRSS was taken.
func (l *LoadFigures) memorySettings() string {
	limit := "no GOMEMLIMIT"
	if l.MemoryLimit > 0 && l.MemoryLimit < math.MaxInt64 {
		limit = fmt.Sprintf("GOMEMLIMIT %.0f MiB", float64(l.MemoryLimit)/(1<<20))
	}
	gc := "GOGC 100"
	if l.GOGC != "" {
		gc = "GOGC " + l.GOGC
	}
	return limit + ", " + gc
}

func (s *Stack) loadFigures(ctx context.Context, o Options, batches int, publish, pipeline time.Duration, before, after cpuSample) *LoadFigures {
	requests := o.Requests
	l := &LoadFigures{Rail: o.Rail, Requests: requests, Batches: batches, Publish: publish, Pipeline: pipeline, PeakRSS: peakRSS(),
		MemoryLimit: debug.SetMemoryLimit(-1), GOGC: os.Getenv("GOGC"),
		WorkersCPU: after.workers - before.workers, RedisCPU: -1, ChildCPU: map[string]time.Duration{}, LoadGenCPU: -1,
		HeapObjects: after.heap.objects - before.heap.objects, HeapBytes: after.heap.bytes - before.heap.bytes,
		GCCycles: after.heap.gcs - before.heap.gcs, Yardstick: [2]time.Duration{before.yardstick, after.yardstick}}
	if l.Rail == "" {
		l.Rail = "wompi"
	}
	if before.redis >= 0 && after.redis >= 0 {
		l.RedisCPU = after.redis - before.redis
	}
	for role, d := range after.children {
		l.ChildCPU[role] = d - before.children[role]
	}
	l.RequestsPerSec = float64(requests) / pipeline.Seconds()
	l.BatchesPerSec = float64(batches) / pipeline.Seconds()
	if batches > 0 {
		l.RedisCommands = float64(s.redisCalls.commands.Load()) / float64(batches)
		l.RedisRoundTrips = float64(s.redisCalls.roundTrips.Load()) / float64(batches)
	}
	l.RawConsumePerSec = s.rawConsume(ctx, requests)
	if l.RawConsumePerSec > 0 {
		l.PipelineOverRawPc = 100 * l.RequestsPerSec / l.RawConsumePerSec
	}
	return l
}

// rawConsume reads the whole request topic with a plain franz-go group
// consumer (auto-commit), the yardstick the pipeline is compared with. The
// clock starts when the first fetch arrives, so that fetch's records are not
// counted; 0 when fewer than a tenth of the records came after it (a small
// topic can arrive in one or two fetches, and dividing it by the microseconds
// after them would report billions of records per second).
func (s *Stack) rawConsume(ctx context.Context, want int) float64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumerGroup(fmt.Sprintf("raw-consume-%d", time.Now().UnixNano())),
		kgo.ConsumeTopics(s.Topics.Requests), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	n, first := 0, 0
	var start time.Time
	for n < want && cctx.Err() == nil {
		fs := cl.PollFetches(cctx)
		k := fs.NumRecords()
		if start.IsZero() && k > 0 {
			start, first = time.Now(), k
		}
		n += k
	}
	return rawRate(n-first, want, time.Since(start))
}

// rawRate is timed records over the time they took; 0 when they are too few
// to time (under a tenth of want) or took no time.
func rawRate(timed, want int, took time.Duration) float64 {
	if timed <= 0 || timed < want/10 || took <= 0 {
		return 0
	}
	return float64(timed) / took.Seconds()
}

// ledgerView is what the reconciliation needs of the simulator's audit
// ledger: the amounts Wompi accepted for each request of the run (one per
// acceptance), and the references paid more than once.
type ledgerView struct {
	amounts   [][]int64 // by request index; nil: never accepted
	paidTwice []string
	// accepted counts, per rail, the requests of the run its simulator's
	// ledger accepted (at least once).
	accepted map[rail.Name]int
}

func newLedgerView(n int) *ledgerView {
	return &ledgerView{amounts: make([][]int64, n), accepted: map[rail.Name]int{}}
}

// ledgerOf reads the in-process simulator's ledger.
func (t *Tally) ledgerOf(sim *wompitest.Server) *ledgerView {
	v := newLedgerView(len(t.status))
	// Accepted more than once, settled or not (PaidMoreThanOnce is only
	// those settled APPROVED twice): the single-payout rails' ledgers count
	// the same way (addRailLedgers).
	v.paidTwice = sim.Duplicates()
	v.accepted[rail.Wompi] = 0 // read, even if it accepted nothing
	for i := range v.amounts {
		if e, ok := sim.LedgerEntry(t.m.RequestID(i)); ok {
			v.amounts[i] = e.AmountsInCents
			v.accepted[rail.Wompi]++
		}
	}
	return v
}

// fetchLedger streams the child simulator's compact ledger
// (GET /_sim/ledger/amounts), one reference at a time, so that a million
// references never sit in memory as one JSON document.
func (t *Tally) fetchLedger(ctx context.Context, baseURL string) (*ledgerView, error) {
	root := strings.TrimSuffix(baseURL, "/v1")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, root+"/_sim/ledger/amounts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoLedger, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET /_sim/ledger/amounts: %s", errNoLedger, resp.Status)
	}
	v := newLedgerView(len(t.status))
	v.accepted[rail.Wompi] = 0 // read, even if it accepted nothing
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	var line wompitest.LedgerAmounts
	for dec.More() {
		line.AmountsInCents = line.AmountsInCents[:0]
		if err := dec.Decode(&line); err != nil {
			return nil, fmt.Errorf("%w: %v", errNoLedger, err)
		}
		if len(line.AmountsInCents) > 1 { // accepted twice, settled or not
			v.paidTwice = append(v.paidTwice, line.Reference)
		}
		i, ok := t.m.Index(line.Reference)
		if ok && i < len(v.amounts) {
			v.amounts[i] = slices.Clone(line.AmountsInCents)
			v.accepted[rail.Wompi]++
		}
	}
	return v, nil
}

// LoadSummary is the load run's figures in one JSON object
// (payouts-local --load --load-json FILE), for comparing runs by script:
// every CPU figure is microseconds per request (per payout on a
// single-payout rail) from the first publish to the last SUBMITTED, as the
// printed report gives it. A figure that was not measured is null.
type LoadSummary struct {
	Rail            string   `json:"rail"`
	Requests        int      `json:"requests"`
	Batches         int      `json:"batches"`
	PipelineSeconds float64  `json:"pipeline_seconds"`
	PerSecond       float64  `json:"per_second"`
	SteadyPerSecond *float64 `json:"steady_per_second"`
	RedisCommands   float64  `json:"dispatcher_redis_commands_per_batch"`
	RedisRoundTrips float64  `json:"dispatcher_redis_round_trips_per_batch"`
	CPU             struct {
		WorkersProcess   float64            `json:"workers_process"`
		LoadRun          *float64           `json:"load_run"`
		WorkersAlone     *float64           `json:"workers_alone"`
		Redis            *float64           `json:"redis"`
		Children         map[string]float64 `json:"children"`
		Simulators       float64            `json:"simulators"`
		WorkersRedisSims float64            `json:"workers_redis_simulators"`
	} `json:"cpu_us_per_request"`
	// Heap allocations of the workers' process per request (with the
	// load run's part), and its collections; null when not measured.
	HeapObjectsPerRequest *float64           `json:"heap_objects_per_request"`
	HeapBytesPerRequest   *float64           `json:"heap_bytes_per_request"`
	GCCycles              *uint64            `json:"gc_cycles"`
	PeakRSSMiB            float64            `json:"peak_rss_mib"`
	MemorySettings        string             `json:"memory_settings"`
	ChildRSSMiB           map[string]float64 `json:"child_peak_rss_mib"`
	RawConsumePerSec      *float64           `json:"raw_consume_per_second"`
	// The machine's yardstick (cpustat.Yardstick) in milliseconds of CPU,
	// before the run and after it; null when not measured.
	YardstickBeforeMs *float64 `json:"yardstick_ms_before"`
	YardstickAfterMs  *float64 `json:"yardstick_ms_after"`
	Reconciled        bool     `json:"reconciled"`
}

// Summary is l as a LoadSummary; reconciled is the run's verdict.
func (l *LoadFigures) Summary(reconciled bool) LoadSummary {
	s := LoadSummary{Rail: l.Rail, Requests: l.Requests, Batches: l.Batches, PipelineSeconds: l.Pipeline.Seconds(),
		PerSecond: l.RequestsPerSec, RedisCommands: l.RedisCommands, RedisRoundTrips: l.RedisRoundTrips,
		PeakRSSMiB: float64(l.PeakRSS) / (1 << 20), MemorySettings: l.memorySettings(), ChildRSSMiB: map[string]float64{},
		Reconciled: reconciled}
	us := func(d time.Duration) *float64 { v := l.perRequest(d); return &v }
	if l.SteadyPerSec > 0 {
		s.SteadyPerSecond = &l.SteadyPerSec
	}
	if l.RawConsumePerSec > 0 {
		s.RawConsumePerSec = &l.RawConsumePerSec
	}
	if l.Yardstick[0] > 0 && l.Yardstick[1] > 0 {
		before, after := ms(l.Yardstick[0]), ms(l.Yardstick[1])
		s.YardstickBeforeMs, s.YardstickAfterMs = &before, &after
	}
	s.CPU.WorkersProcess = l.perRequest(l.WorkersCPU)
	if l.LoadGenCPU >= 0 {
		s.CPU.LoadRun, s.CPU.WorkersAlone = us(l.LoadGenCPU), us(l.PipelineWorkersCPU())
	}
	if l.RedisCPU >= 0 {
		s.CPU.Redis = us(l.RedisCPU)
	}
	if l.HeapObjects > 0 {
		objects, bytes, gcs := l.perRequestCount(l.HeapObjects), l.perRequestCount(l.HeapBytes), l.GCCycles
		s.HeapObjectsPerRequest, s.HeapBytesPerRequest, s.GCCycles = &objects, &bytes, &gcs
	}
	s.CPU.Children = map[string]float64{}
	for role, d := range l.ChildCPU {
		s.CPU.Children[role] = l.perRequest(d)
	}
	s.CPU.Simulators = l.perRequest(l.SimulatorCPU())
	s.CPU.WorkersRedisSims = l.perRequest(l.WorkersCPU + max(0, l.RedisCPU) + l.SimulatorCPU())
	for name, rss := range l.ChildRSS {
		s.ChildRSSMiB[name] = float64(rss) / (1 << 20)
	}
	return s
}

// WriteLoadJSON writes the load run's LoadSummary, indented, to w; an error
// when the report holds no load figures (not a load run).
func (r *Report) WriteLoadJSON(w io.Writer) error {
	if r.Load == nil {
		return errors.New("localrun: no load figures: not a load run")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.Load.Summary(r.OK()))
}
