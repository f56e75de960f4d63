package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// awaitsHandOff holds a failure for a hand-off only while Redis lost
// nothing since the payout was made: a marker written at a first start
// (no loss known) and one written after a loss that predates the payout
// hold it; a loss after the payout was made, or a payout older than
// handOffWait, does not.
func TestAwaitsHandOffOnlyWithoutALossSinceThePayout(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	e, _ := f.engine()
	ctx := context.Background()
	mustEpoch(t, e.statuses) // a first start: a bare marker
	now := f.clock.Now()
	check := func(what string, born time.Time, want bool) {
		t.Helper()
		got, err := e.awaitsHandOff(ctx, rail.Payout{CreatedAt: born})
		if err != nil || got != want {
			t.Errorf("%s: awaitsHandOff %v, %v; want %v", what, got, err, want)
		}
	}
	check("no loss known", now.Add(-time.Minute), true)
	check("older than handOffWait", now.Add(-handOffWait), false)
	check("no creation time", time.Time{}, false)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	mustEpoch(t, e.statuses) // the loss seen: a marker stamped now
	check("made a minute before the loss", now.Add(-time.Minute), false)
	f.clock.Advance(time.Minute)
	check("made after the loss", f.clock.Now().Add(time.Second), true)
}
