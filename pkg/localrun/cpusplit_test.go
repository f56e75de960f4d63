package localrun

import (
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

func cpuProfile(samples ...*profile.Sample) *profile.Profile {
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample:     samples,
	}
}

func profSample(d time.Duration, loadGen bool) *profile.Sample {
	s := &profile.Sample{Value: []int64{int64(d / (10 * time.Millisecond)), int64(d)}}
	if loadGen {
		s.Label = map[string][]string{partLabel: {loadGenPart}}
	}
	return s
}

// The load generator's share is its labelled samples' CPU over all the
// samples', measured only from a second of sampled CPU up.
func TestLoadGenShare(t *testing.T) {
	share, ok := loadGenShare(cpuProfile(profSample(1500*time.Millisecond, false), profSample(500*time.Millisecond, true)))
	if !ok || share != 0.25 {
		t.Fatalf("share %v (measured %v), want 0.25", share, ok)
	}
	if share, ok := loadGenShare(cpuProfile(profSample(600*time.Millisecond, false), profSample(300*time.Millisecond, true))); ok {
		t.Fatalf("0.9 s sampled: share %v measured, want not measured", share)
	}
	if _, ok := loadGenShare(&profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}}); ok {
		t.Fatal("a profile without CPU samples measured")
	}
}
