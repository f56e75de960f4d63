package dispatch

import (
	"context"
	"testing"
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
		read := 0
		e.lookVisit = func() error {
			if read++; read > 10 {
				return context.DeadlineExceeded
			}
			return nil
		}
		ctx := context.Background()
		if err := e.process(ctx, &b, src, testLogger()); err == nil {
			t.Fatal("the first try's look ended: want it cut short")
		}
		// The first try read further than the log now holds, and found
		// the payee's REJECTED there (the lost tail).
		e.looksMu.Lock()
		p := e.looks[tp{src.Topic, src.Partition}]
		if p == nil {
			e.looksMu.Unlock()
			t.Fatal("no progress kept")
		}
		for q := range p.ends {
			p.ends[q] += 1000
		}
		if p.found == nil {
			p.found = map[string]refusal{}
		}
		p.found[rid] = newRefusal("beneficiary refused", "the rail refused the payee", false)
		e.looksMu.Unlock()
		e.lookVisit = nil
		_ = e.process(ctx, &b, src, testLogger())
		if n := r.sim.Accepted(rid); n != 0 {
			t.Fatalf("payee whose REJECTED an earlier try read paid %d times after the log was cut below it", n)
		}
	})
}
