package track

import (
	"context"
	"testing"
	"time"
)

// Issue 15 item 6: a partial Redis loss drops a payout's polling-schedule
// entry but keeps the ready marker (and the hand-off). The payout's
// webhooks are lost too. The sweep puts it back, so polling still brings
// its final statuses; a payout that ended is not brought back.
func TestSweepReschedulesPayoutDroppedFromSchedule(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, _ := f.engine(func(c *Config) { c.SweepInterval = time.Hour })
	ctx := context.Background()
	ended := f.submit(true, f.payee("1234567890"))
	if err := f.sub.MarkReady(ctx); err != nil {
		t.Fatal(err)
	}
	f.sim.SettleAll()
	// The first round polls the settled payout to its end.
	if res, err := e.PollOnce(ctx); err != nil || res.Done != 1 {
		t.Fatalf("first round: %+v %v", res, err)
	}
	lost := f.submit(true, f.payee("1234567891"), f.payee("1234567892"))
	// The partial loss: the schedule entry of the new payout goes, the
	// ready marker and the hand-off stay.
	if err := f.sub.Done(ctx, lost.payoutID); err != nil {
		t.Fatal(err)
	}
	if ready, _ := f.sub.Ready(ctx); !ready {
		t.Fatal("ready marker gone: that would be a full loss")
	}
	f.sim.SettleAll()
	f.clock.Advance(time.Minute)
	res, err := e.PollOnce(ctx) // within the interval: no sweep yet
	if err != nil || res.Claimed != 0 || res.Swept != 0 {
		t.Fatalf("round before the sweep is due: %+v %v", res, err)
	}
	f.clock.Advance(time.Hour)
	res, err = e.PollOnce(ctx)
	if err != nil || res.Swept != 1 || res.Claimed != 1 || res.Done != 1 {
		t.Fatalf("round with the sweep: %+v %v (want the lost payout swept back, polled and done)", res, err)
	}
	byKey := transitions(f.statusEvents())
	for _, tx := range append(ended.txs, lost.txs...) {
		if len(byKey[tx.Reference+"/APPROVED"]) != 1 {
			t.Errorf("%s: no APPROVED", tx.Reference)
		}
	}
	// Both payouts ended: a later sweep brings neither back.
	f.clock.Advance(2 * time.Hour)
	if res, err := e.PollOnce(ctx); err != nil || res.Swept != 0 || res.Claimed != 0 {
		t.Fatalf("sweep after both ended: %+v %v", res, err)
	}
	if n, _ := f.sub.Scheduled(ctx); n != 0 {
		t.Fatalf("%d payouts scheduled, want 0", n)
	}
}

// Two faults: Redis restarts from a snapshot older than a payout's hand-off
// (or fails over to a replica that missed it), so the payout's schedule
// entry and hand-off are gone while the ready marker, older, is kept; and
// the payout's webhooks are lost. Neither the rebuild (the marker was
// there) nor the sweep (no hand-off) brought it back, and its final status
// was never emitted. The marker names the Redis process it was written on:
// another process means a rebuild, which lists the payout from Wompi.
func TestRestartFromAnOlderSnapshotRebuildsTheSchedule(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	e, _ := f.engine(func(c *Config) { c.SweepInterval = time.Minute })
	ctx := context.Background()
	if err := f.sub.MarkReady(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := e.PollOnce(ctx); err != nil || res.Rebuilt {
		t.Fatalf("poll on its own Redis process: %+v %v, want no rebuild", res, err)
	}
	marker := f.prefix + "{poll}:ready"
	lost := f.submit(true, f.payee("1234567890"))
	f.sim.SettleAll()
	// The restart: everything written after the snapshot is gone.
	if err := f.redis.RestartKeeping(ctx, marker); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt {
		t.Fatalf("poll after the restart: %+v %v, want a rebuild", res, err)
	}
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	byKey := transitions(f.statusEvents())
	for _, tx := range lost.txs {
		if len(byKey[tx.Reference+"/APPROVED"]) != 1 {
			t.Errorf("%s: no APPROVED: the payout was never polled again", tx.Reference)
		}
	}
	if ready, _ := f.sub.Ready(ctx); !ready {
		t.Fatal("not ready after the rebuild")
	}
}
