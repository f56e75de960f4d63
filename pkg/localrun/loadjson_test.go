package localrun

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestLoadJSONGivesThePrintedFigures holds --load-json to the printed
// report: the same per-request CPU figures, sums and rates, null for what
// was not measured, and the reconciliation verdict.
func TestLoadJSONGivesThePrintedFigures(t *testing.T) {
	l := &LoadFigures{Rail: "wompi", Requests: 1000, Batches: 2, Pipeline: 2 * time.Second, RequestsPerSec: 500, SteadyPerSec: 640,
		RedisCommands: 24.5, RedisRoundTrips: 14, PeakRSS: 300 << 20, MemoryLimit: 240 << 20,
		WorkersCPU: 30 * time.Millisecond, RedisCPU: 20 * time.Millisecond, LoadGenCPU: 8 * time.Millisecond,
		ChildCPU: map[string]time.Duration{"kfake": 3 * time.Millisecond, "wompisim": 11 * time.Millisecond},
		ChildRSS: map[string]int64{"kfake": 64 << 20}, RawConsumePerSec: 800000,
		HeapObjects: 13_500, HeapBytes: 2_900_000, GCCycles: 42, Yardstick: [2]time.Duration{70 * time.Millisecond, 66500 * time.Microsecond}}
	var out bytes.Buffer
	if err := (&Report{Load: l}).WriteLoadJSON(&out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	cpu, _ := got["cpu_us_per_request"].(map[string]any)
	children, _ := cpu["children"].(map[string]any)
	for name, want := range map[string]any{
		"rail": "wompi", "requests": 1000.0, "batches": 2.0, "pipeline_seconds": 2.0, "per_second": 500.0, "steady_per_second": 640.0,
		"dispatcher_redis_commands_per_batch": 24.5, "dispatcher_redis_round_trips_per_batch": 14.0,
		"peak_rss_mib": 300.0, "memory_settings": "GOMEMLIMIT 240 MiB, GOGC 100", "raw_consume_per_second": 800000.0,
		"heap_objects_per_request": 13.5, "heap_bytes_per_request": 2900.0, "gc_cycles": 42.0,
		"yardstick_ms_before": 70.0, "yardstick_ms_after": 66.5,
		"cpu.workers_process": 30.0, "cpu.load_run": 8.0, "cpu.workers_alone": 22.0, "cpu.redis": 20.0,
		"cpu.simulators": 11.0, "cpu.workers_redis_simulators": 61.0, "children.kfake": 3.0, "children.wompisim": 11.0,
	} {
		var v any
		switch {
		case len(name) > 4 && name[:4] == "cpu.":
			v = cpu[name[4:]]
		case len(name) > 9 && name[:9] == "children.":
			v = children[name[9:]]
		default:
			v = got[name]
		}
		if f, ok := want.(float64); ok {
			if g, ok := v.(float64); !ok || math.Abs(g-f) > 1e-9 {
				t.Errorf("%s = %v, want %v", name, v, want)
			}
		} else if v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if got["reconciled"] != true {
		t.Errorf("reconciled = %v for a report with nothing wrong", got["reconciled"])
	}

	// Not measured: the load run's share, Redis's CPU, the raw consume,
	// the steady rate, the machine's yardstick.
	l.LoadGenCPU, l.RedisCPU, l.RawConsumePerSec, l.SteadyPerSec, l.HeapObjects = -1, -1, 0, 0, 0
	l.Yardstick = [2]time.Duration{}
	out.Reset()
	if err := (&Report{Load: l, DuplicatesPaid: []string{"r-1"}}).WriteLoadJSON(&out); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	cpu, _ = got["cpu_us_per_request"].(map[string]any)
	for _, k := range []string{"load_run", "workers_alone", "redis"} {
		if v, ok := cpu[k]; !ok || v != nil {
			t.Errorf("cpu %s = %v (present %v), want null", k, v, ok)
		}
	}
	for _, k := range []string{"raw_consume_per_second", "steady_per_second", "heap_objects_per_request", "heap_bytes_per_request", "gc_cycles",
		"yardstick_ms_before", "yardstick_ms_after"} {
		if v, ok := got[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	if w, _ := cpu["workers_redis_simulators"].(float64); w != 41 {
		t.Errorf("workers_redis_simulators = %v, want 41 (no Redis figure counts as 0, as printed)", w)
	}
	if got["reconciled"] != false {
		t.Errorf("reconciled = %v for a report with a payee paid twice", got["reconciled"])
	}

	if err := (&Report{}).WriteLoadJSON(&out); err == nil {
		t.Error("a report without load figures wrote JSON")
	}
}

// TestSteadyRateLeavesOutTheStartAndTheTail: a run that waits 5 s before
// its first SUBMITTED, then makes 1,000 a second, is timed at 1,000 a
// second; times too close together give no figure.
func TestSteadyRateLeavesOutTheStartAndTheTail(t *testing.T) {
	var ms []int64
	for i := range 10000 {
		ms = append(ms, 5000+int64(i)) // one per ms from t=5 s
	}
	ms = append(ms, 60000) // a straggler
	// Any order: the tally sees events as the status topic's partitions
	// interleave them.
	ms[0], ms[9999] = ms[9999], ms[0]
	if got := steadyRate(ms); math.Abs(got-1000) > 5 {
		t.Errorf("steadyRate = %.1f/s, want 1000/s", got)
	}
	if got := steadyRate([]int64{1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2}); got != 0 {
		t.Errorf("steadyRate over 1 ms = %v, want 0 (not timed)", got)
	}
	if got := steadyRate([]int64{1, 2}); got != 0 {
		t.Errorf("steadyRate of 2 events = %v, want 0", got)
	}
}
