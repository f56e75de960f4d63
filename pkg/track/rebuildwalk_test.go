package track

import (
	"context"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// innerWompi names the embedded rail apart from rail.BatchTracking's
// Rail method.
type innerWompi = wompi.Rail

// walkHookRail is the tracker's Wompi rail with a hook that runs once,
// after the first batch a listing by status yielded was taken (so between
// that page and the next one's GET): what happens at Wompi, or to Redis,
// while the rebuild walks its listings.
type walkHookRail struct {
	*innerWompi
	once  sync.Once
	after func()
}

func (r *walkHookRail) BatchesByStatus(ctx context.Context, since time.Time, statuses ...payout.BatchStatus) iter.Seq2[rail.Batch, error] {
	inner := r.innerWompi.BatchesByStatus(ctx, since, statuses...)
	return func(yield func(rail.Batch, error) bool) {
		for b, err := range inner {
			if !yield(b, err) {
				return
			}
			if err == nil {
				r.once.Do(r.after)
			}
		}
	}
}

// Redis lost everything (the hand-offs, the schedule) while three payouts
// were pending and their webhooks were being lost. The rebuild walks GET
// /payouts?status=PENDING,... a page at a time; between its first page and
// its second the oldest payout settles, leaves that listing, and every
// payout after it moves up one place: the second page no longer holds the
// second payout. Skipped by the rebuild and with no hand-off for the sweep,
// that payout was never polled again: its final status, whose webhook was
// lost, was never emitted.
func TestRebuildWalkSkipsNoPayoutThatShiftedPages(t *testing.T) {
	rebuildThroughShiftedPages(t, 0)
}

// The same shift among payouts pending for three days (a dispersion
// scheduled that far, a hold): older than RebuildLookback, so the walk of
// the recent payouts did not list them; the walk without a status filter
// looks back rebuildPendingLookback for those not final.
func TestRebuildWalkSkipsNoOlderPendingPayoutThatShiftedPages(t *testing.T) {
	rebuildThroughShiftedPages(t, 72*time.Hour)
}

// rebuildThroughShiftedPages runs TestRebuildWalkSkipsNoPayoutThatShiftedPages
// with Wompi settling each transaction settleDelay after its payout's
// creation (0: the simulator's default), the loss coming just after the
// first payout's settle time.
func rebuildThroughShiftedPages(t *testing.T, settleDelay time.Duration) {
	f := newFixture(t, fixtureOpts{ownRedis: true, pageSize: 1, sim: wompitest.Config{SettleDelay: settleDelay,
		Faults: wompitest.Faults{WebhookDropRate: 1}}})
	ctx := context.Background()
	a := f.submit(true, f.payee("1234567890"))
	f.clock.Advance(10 * time.Minute) // b and c settle later than a
	b := f.submit(true, f.payee("1234567891"))
	c := f.submit(true, f.payee("1234567892"))
	if settleDelay > 0 {
		f.clock.Advance(settleDelay - 5*time.Minute) // a is due, b and c are not
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	hooked := &walkHookRail{innerWompi: f.rail(f.wompi, f.sim.Config().EventsSecret)}
	hooked.after = func() {
		if n := f.sim.Tick(); n != 1 { // a only
			t.Errorf("%d transactions settled during the walk, want a's", n)
		}
	}
	e, srv := f.engine(func(cfg *Config) { cfg.Wompi = hooked })
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt {
		t.Fatalf("poll after the loss: %+v %v", res, err)
	}
	for _, p := range []created{b, c} { // a, settled, was polled once and left
		if _, err := f.redis.Client().ZScore(ctx, f.prefix+"{poll}", p.payoutID).Result(); err != nil {
			t.Errorf("payout %s (%s) is not on the rebuilt schedule: %v", p.payoutID, p.batchID, err)
		}
	}
	// Whatever the schedule holds is carried to the end: every payee's
	// APPROVED, whose webhook was dropped, comes from a poll.
	f.sim.SettleAll()
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkMonotonic(t, evs)
	byKey := transitions(evs)
	for _, p := range []created{a, b, c} {
		for _, tx := range p.txs {
			if len(byKey[tx.Reference+"/APPROVED"]) != 1 {
				t.Errorf("%s (payout %s): no APPROVED after the rebuild", tx.Reference, p.payoutID)
			}
		}
	}
}

// Redis loses its data again while the schedule is being rebuilt after a
// first loss (a FLUSHALL, a restart without persistence, a failover): the
// payouts the rebuild had already put back are gone with it, and the walk
// goes on with the rest. Marked ready at its end, that schedule was taken
// as complete: the payout listed before the second loss was never polled
// again, and its final status, whose webhook was lost, never emitted.
func TestRedisLossDuringRebuildRebuildsAgain(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, pageSize: 1, sim: wompitest.Config{Faults: wompitest.Faults{WebhookDropRate: 1}}})
	ctx := context.Background()
	a := f.submit(true, f.payee("1234567890"))
	b := f.submit(true, f.payee("1234567891"))
	// Both still pending a month on (the simulator settles them only
	// when ticked): older than every lookback of the rebuild, so only the
	// walk by status lists them.
	f.clock.Advance(rebuildPendingLookback + 72*time.Hour)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	hooked := &walkHookRail{innerWompi: f.rail(f.wompi, f.sim.Config().EventsSecret)}
	hooked.after = func() { // the rebuild has put a back: Redis loses it
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Error(err)
		}
	}
	e, srv := f.engine(func(cfg *Config) { cfg.Wompi = hooked })
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	for range 3 {
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.sim.SettleAll()
	for range 3 {
		f.clock.Advance(time.Hour)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.statusEvents()
	checkMonotonic(t, evs)
	byKey := transitions(evs)
	for _, p := range []created{a, b} {
		for _, tx := range p.txs {
			if len(byKey[tx.Reference+"/APPROVED"]) != 1 {
				t.Errorf("%s (payout %s): no APPROVED after the rebuild", tx.Reference, p.payoutID)
			}
		}
	}
}
