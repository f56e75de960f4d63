package dispatch

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A look cut short keeps a payee's REJECTED it read; before the retry
// the partition's log was cut below where that look reached (an unclean
// leader election: the same log, its topic id unchanged, its tail with the
// REJECTED lost). The retry's resumed read is past the end
// (events.ErrOffsetsAhead) and looks again from the batch's first write,
// where the REJECTED is no more: what the earlier try read must still
// count, or the payee refused before the loss (and re-sent by the
// marketplace under a new requestId) is paid as well.
func TestStatusLookOffsetsAheadKeepsFinds(t *testing.T) {
	eachSingleRailIndex(t, func(t *testing.T, i int) {
		f, r, b, src := lookedAcrossALoss(t, i, "look-truncated")
		rid := b.Transactions[0].RequestID
		payeeRecords(t, f, rid, 25, -1, nil)
		e := r.engine(f, nil)
		cutLooksAfter(e, 10)
		ctx := context.Background()
		if err := e.process(ctx, &b, src, testLogger()); err == nil {
			t.Fatal("the first try's look ended: want it cut short")
		}
		// The first try read further than the log now holds, and found
		// the payee's REJECTED there (the lost tail).
		progressPastTheEnd(t, e, src, rid, newRefusal("beneficiary refused", "the rail refused the payee", false))
		e.lookVisit = nil
		_ = e.process(ctx, &b, src, testLogger())
		if n := r.sim.Accepted(rid); n != 0 {
			t.Fatalf("payee whose REJECTED an earlier try read paid %d times after the log was cut below it", n)
		}
	})
}

// cutLooksAfter cuts each look of e for an earlier refusal short after it
// read n records (RefusalLookLimit running out); reset starts the count
// again, for the next try.
func cutLooksAfter(e *Engine, n int) (reset func()) {
	read := 0
	e.lookVisit = func() error {
		if read++; read > n {
			return context.DeadlineExceeded
		}
		return nil
	}
	return func() { read = 0 }
}

// progressPastTheEnd moves the offsets the progress kept for src's look
// reached 1000 past its partitions' ends, as a log that lost its tail
// below them (an unclean leader election) would leave them; a non-empty
// key adds a refusal found under it, read in that lost tail.
func progressPastTheEnd(t *testing.T, e *Engine, src *kgo.Record, key string, found refusal) {
	t.Helper()
	e.looksMu.Lock()
	defer e.looksMu.Unlock()
	p := e.looks[tp{src.Topic, src.Partition}]
	if p == nil {
		t.Fatal("no progress kept")
	}
	for q := range p.ends {
		p.ends[q] += 1000
	}
	if key != "" {
		if p.found == nil {
			p.found = map[string]refusal{}
		}
		p.found[key] = found
	}
}
