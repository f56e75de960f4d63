package localrun

import (
	"bytes"
	"context"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/google/pprof/profile"
)

// The load run's own work (the synthetic marketplace, the publisher, the
// status follower, the tally and the progress loop) runs in the workers'
// process. Its goroutines carry the pprof label part=loadgen, inherited by
// every goroutine they start (their franz-go clients' included), so that a
// CPU profile of the measured window tells its share from the workers'.
const (
	partLabel   = "part"
	loadGenPart = "loadgen"
)

// labelLoadGen labels the calling goroutine, and the goroutines it starts
// from now on, as the load generator's; the returned func undoes it.
func labelLoadGen(ctx context.Context) (undo func()) {
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels(partLabel, loadGenPart)))
	return func() { pprof.SetGoroutineLabels(ctx) }
}

// cpuSplit profiles the process over the measured window.
type cpuSplit struct {
	buf bytes.Buffer
	on  bool
}

// startCPUSplit starts a CPU profile; when one is already running (the
// --cpuprofile flag) the split is not measured.
func startCPUSplit() *cpuSplit {
	s := &cpuSplit{}
	s.on = pprof.StartCPUProfile(&s.buf) == nil
	return s
}

// stop ends the profile and returns the load generator's share of the
// process's sampled CPU; ok is false when it was not measured. The
// garbage collector's background work carries no label: it counts as the
// workers', which overstates them.
func (s *cpuSplit) stop() (share float64, ok bool) {
	if !s.on {
		return 0, false
	}
	pprof.StopCPUProfile()
	s.on = false
	p, err := profile.Parse(&s.buf)
	if err != nil {
		return 0, false
	}
	return loadGenShare(p)
}

// minSplitCPU is the sampled CPU below which the split is not measured: at
// the profiler's 100 samples a second, a small run's few samples can miss
// the load generator's goroutines entirely.
const minSplitCPU = int64(time.Second)

// loadGenShare is the share of p's CPU samples labelled part=loadgen; ok is
// false when p holds less than minSplitCPU of samples.
func loadGenShare(p *profile.Profile) (float64, bool) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, false
	}
	var total, gen int64
	for _, smp := range p.Sample {
		v := smp.Value[idx]
		total += v
		if slices.Contains(smp.Label[partLabel], loadGenPart) {
			gen += v
		}
	}
	if total < minSplitCPU {
		return 0, false
	}
	return float64(gen) / float64(total), true
}
