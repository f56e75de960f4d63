package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The records a window produces, and their keys and values, are carved
// from arenas reused window after window. Thousands of requests in a few
// windows cross the arenas' chunks and reuse them: every request still has
// its one event, keyed by its requestId (read checks the keys), and its
// one batch.
func TestStatusEventsAcrossArenaChunksAndWindows(t *testing.T) {
	f := newFixture(t, 2)
	first, valid, invalid := mixed(2*recordChunk+500, 0)
	second, valid2, invalid2 := mixed(recordChunk+700, len(first))
	f.produce(first)
	e := f.engine("ingest-arena", func(c *Config) {
		c.MaxTransactions = 1000
		c.MaxWait, c.MaxWindow = 2*time.Second, 2*time.Second
	})
	stop := f.run(e)
	f.read(len(first))
	f.produce(second)
	o := f.read(len(first) + len(second))
	stop()
	o.assertExactlyOnce(t, append(valid, valid2...), append(invalid, invalid2...))
	if got := testutil.ToFloat64(e.m.txns.WithLabelValues("committed")); got < 2 {
		t.Fatalf("%v windows committed, want at least 2 (the arenas reused)", got)
	}
	if len(e.recs.chunks) < 2 || len(e.slab.chunks) < 2 {
		t.Fatalf("%d record chunks and %d slab chunks: the test did not cross a chunk", len(e.recs.chunks), len(e.slab.chunks))
	}
}

// A promise of an earlier window can run late: after a window that ended
// in an error, the closed session fails its buffered records, and franz-go
// runs their promises on a goroutine of its own, after Close returned. A
// window must not start before it ran: its records' memory is reused, and
// the late failure would abort the new window, taken for one of its own.
//
// Here the late promise is held until the next window has claimed its
// requests (or 2 s, if no window starts before it runs). Run before that
// window, it leaves the window's produce error unset, and the window
// commits; run inside it, the window aborts.
func TestWindowWaitsTheLatePromisesOfTheLastOne(t *testing.T) {
	f := newFixture(t, 1)
	reqs, valid, invalid := mixed(20, 0)
	f.produce(reqs)
	e := f.engine("ingest-late-promise", nil)
	release, ran := make(chan struct{}), make(chan struct{})
	e.pending.Add(1) // a record of the closed session, still buffered
	go func() {
		select {
		case <-release:
		case <-time.After(2 * time.Second):
		}
		e.promise(&kgo.Record{Topic: f.topics.Status}, errors.New("client closed (test: the last session's record)"))
		close(ran)
	}()
	var claims int
	e.afterClaim = func() error {
		if claims++; claims == 1 {
			close(release)
			<-ran
		}
		return nil
	}
	stop := f.run(e)
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, valid, invalid)
	if got := testutil.ToFloat64(e.m.txns.WithLabelValues("aborted")); got != 0 {
		t.Fatalf("%v windows aborted: the late promise of the last window was taken for this one's", got)
	}
}

// A burst's window may fill many chunks; the next window keeps only
// keptChunks of them (the rest would pin the live heap, and under a memory
// limit make every later collection come sooner), and starts over at the
// first.
func TestArenasKeepFewChunksAcrossWindows(t *testing.T) {
	var a recordArena
	first := a.next()
	for range (keptChunks+3)*recordChunk - 1 {
		a.next()
	}
	var s slab
	for range keptChunks + 3 {
		s.took(append(s.room(slabChunk), make([]byte, slabChunk)...), 0)
	}
	if len(a.chunks) != keptChunks+3 || len(s.chunks) != keptChunks+3 {
		t.Fatalf("%d record chunks and %d slab chunks filled, want %d each", len(a.chunks), len(s.chunks), keptChunks+3)
	}
	a.reset()
	s.reset()
	if len(a.chunks) != keptChunks || cap(a.chunks) < keptChunks+3 || a.chunks[:cap(a.chunks)][keptChunks] != nil {
		t.Fatalf("after reset: %d record chunks kept (want %d), the others still referenced: %v", len(a.chunks), keptChunks,
			a.chunks[:cap(a.chunks)][keptChunks] != nil)
	}
	if len(s.chunks) != keptChunks || s.chunks[:cap(s.chunks)][keptChunks] != nil || s.size != 0 || len(s.room(1)) != 0 {
		t.Fatalf("after reset: %d slab chunks kept (want %d, emptied)", len(s.chunks), keptChunks)
	}
	if a.next() != first {
		t.Fatal("the next window does not start at the arena's first record")
	}
}
