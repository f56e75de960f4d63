package payout

import (
	"strconv"
	"testing"
)

// TestEventIDArenaMatchesEventID holds the arena's ids to EventID's, across
// several chunks, and checks that ids handed out earlier keep their value
// once later ones are written and chunks are replaced.
func TestEventIDArenaMatchesEventID(t *testing.T) {
	var a EventIDArena
	n := 5*eventIDChunk + 3
	got := make([]string, n)
	for i := range got {
		got[i] = a.EventID("status", "req-"+strconv.Itoa(i), string(StatusBatched), "b-1")
	}
	for i, id := range got {
		if want := EventID("status", "req-"+strconv.Itoa(i), string(StatusBatched), "b-1"); id != want {
			t.Fatalf("id %d: arena %q, EventID %q", i, id, want)
		}
	}
	if allocs := testing.AllocsPerRun(10*eventIDChunk, func() { _ = a.EventID("status", "req-1", "SUBMITTED", "b-1") }); allocs > 0.1 {
		t.Errorf("arena allocates %.2f times per id", allocs)
	}
}

// eventIDSink keeps the benchmarks' ids alive, as a record's encoding does.
var eventIDSink string

func BenchmarkEventID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		eventIDSink = EventID("status", "req-0001234", string(StatusSubmitted), "batch-0001")
	}
}

func BenchmarkEventIDArena(b *testing.B) {
	var a EventIDArena
	b.ReportAllocs()
	for b.Loop() {
		eventIDSink = a.EventID("status", "req-0001234", string(StatusSubmitted), "batch-0001")
	}
}
