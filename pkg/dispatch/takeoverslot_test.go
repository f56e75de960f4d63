package dispatch

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// landAfterLookup lets the first lookup by reference answer (absent), then
// runs land before its answer is read: a POST of another replica, in
// flight at the takeover, applied just after the lookup.
type landAfterLookup struct {
	base http.RoundTripper
	once sync.Once
	land func()
}

func (l *landAfterLookup) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/payouts") && req.URL.Query().Get("reference") != "" {
		l.once.Do(l.land)
	}
	return resp, err
}

// Two faults and a midnight: a replica posts a scheduled batch just before
// midnight and is cut off with its POST in flight; another replica takes
// the batch over just after midnight, when the new day's batch slots are
// all used. Its lookup by reference finds nothing yet (the POST has not
// landed), and its reservation (the new day's slot) differs from the one
// the batch holds (the old day's): the held one was released and the new
// one denied, so the batch was deferred holding nothing on its dispersion
// day. Then the first replica's POST landed: Wompi holds a payout of the
// batch's amount for that day, which our budget no longer counted, so
// other batches could take the account past its daily limit that day.
// The held reservation is released only once no POST of an earlier attempt
// can land; here the payout shows meanwhile and is adopted.
func TestTakeoverPastMidnightKeepsTheReservationOfAPostStillInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, sim: wompitest.Config{PublishedOnly: true}})
	today := payout.DayIn(testStart, bogota)
	tomorrow := today.Next()
	dispersion := tomorrow.Next().StartIn(bogota).Add(9 * time.Hour)
	f.clock.Set(tomorrow.StartIn(bogota).Add(-30 * time.Second))
	b := simpleBatch("takeover-midnight", 2)
	b.Schedule.DispersionDatetime = &dispersion
	e := f.engine(func(c *Config) { c.DailyBatchCap = 3 })
	ctx := context.Background()

	// The replica cut off: its claim, its reservation (the amount on the
	// dispersion day, the slot today), its record posting, its lease run out.
	cutOffWhilePosting(t, e, b, func() {
		held := newReservation(&b, b.OriginAccountID, b.TotalAmountInCents, f.clock.Now())
		if _, err := e.budget.SeedAmount(ctx, rail.Wompi, held.Day, b.OriginAccountID, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.budget.SeedBatches(ctx, rail.Wompi, held.SlotDay, 0); err != nil {
			t.Fatal(err)
		}
		if g, err := e.budget.Reserve(ctx, held); err != nil || !g.Granted {
			t.Fatalf("the cut-off replica's reservation: %+v %v", g, err)
		}
	})

	// Midnight: the new day's batch slots are all used.
	f.clock.Set(tomorrow.StartIn(bogota).Add(30 * time.Second))
	if _, err := e.budget.SeedBatches(ctx, rail.Wompi, tomorrow.String(), 3); err != nil {
		t.Fatal(err)
	}
	// The cut-off replica's POST lands right after the takeover's first
	// lookup found nothing.
	f.tap.base = &landAfterLookup{base: http.DefaultTransport, land: func() {
		if err := f.wompiCreate(b); err != nil {
			t.Error(err)
		}
	}}

	bb := b
	if err := e.process(ctx, &bb, nil, testLogger()); err != nil {
		t.Fatalf("the takeover: %v", err)
	}
	if n := f.sim.BatchLedger()[b.BatchID].Accepted; n != 1 {
		t.Fatalf("Wompi holds %d payouts of the batch, want the cut-off replica's", n)
	}
	f.noDoublePayment()
	// Wompi pays the batch on its dispersion day: our budget must count it
	// there, or the account's other batches of that day go past its limit.
	if u := budgetUsage(t, e, payout.DayIn(dispersion, bogota)); u.AmountInCents != b.TotalAmountInCents {
		t.Fatalf("dispersion day's budget: %+v, want the %d cents Wompi holds for it (the reservation was released while the cut-off replica's POST could still land)",
			u, b.TotalAmountInCents)
	}
}

// Two faults: a replica is cut off from Redis with a POST of a batch in
// flight, and the replica that takes the batch over has its own POST
// refused (400). RecoveryGrace is far above HTTPTimeout (6 s against 1 s),
// so the cut-off replica's POST may start up to the lease fence (5.5 s)
// after its lease was last confirmed and land RecoveryGrace after that:
// up to 10 s after the takeover's claim. The refusal's lookup proved the
// batch absent RecoveryGrace after the takeover's own POST, and the batch
// was REJECTED (its reservation given back) while the first replica's POST
// could still land, and did: Wompi paid requests the topic says REJECTED.
// An earlier attempt's POST is now waited for as a single-payout
// takeover waits for it (peerWaits), and the payout that lands is adopted.
func TestRefusalAfterATakeoverWaitsForTheCutOffReplicasPost(t *testing.T) {
	// Not t.Parallel: the cut-off replica's POST must land within 2 s of
	// its wall-clock slot, or the test fails as "ran too slowly to tell".
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(func(c *Config) {
		c.HTTPTimeout, c.RecoveryGrace, c.LeaseTTL = time.Second, 6*time.Second, 1500*time.Millisecond
	})
	b := simpleBatch("takeover-refused", 2)
	ctx := context.Background()

	// The cut-off replica: its claim, its record posting, its lease run
	// out now (last confirmed a lease ago).
	cutOffWhilePosting(t, e, b, nil)
	confirmed := time.Now().Add(-e.cfg.LeaseTTL)
	// Its POST may land until the fence plus RecoveryGrace after that.
	lastLanding := confirmed.Add(renewEvery(e.cfg.LeaseTTL) + 2*e.cfg.RecoveryGrace - e.cfg.HTTPTimeout)
	landAt := lastLanding.Add(-2 * time.Second)

	f.tap.fault = func(n int) fault {
		if n == 1 {
			return fault400 // the takeover's POST is refused
		}
		return faultNone
	}
	landed := make(chan time.Time, 1)
	go func() {
		time.Sleep(time.Until(landAt))
		if err := f.wompiCreate(b); err != nil { // the cut-off replica's POST
			t.Error(err)
		}
		landed <- time.Now()
	}()
	bb := b
	err := e.process(ctx, &bb, nil, testLogger())
	if at := <-landed; at.After(lastLanding) {
		t.Fatalf("the POST landed %v past the latest it may: the test ran too slowly to tell", at.Sub(lastLanding))
	}
	if err != nil {
		t.Fatalf("the takeover: %v", err)
	}
	if n := f.sim.BatchLedger()[b.BatchID].Accepted; n != 1 {
		t.Fatalf("Wompi holds %d payouts of the batch, want the cut-off replica's", n)
	}
	f.noDoublePayment()
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		if n := len(idx[tx.RequestID][payout.StatusRejected]); n != 0 {
			t.Fatalf("%s REJECTED while the cut-off replica's POST could still land (and did: Wompi pays it)", tx.RequestID)
		}
		if n := len(idx[tx.RequestID][payout.StatusSubmitted]); n != 1 {
			t.Errorf("%s: %d SUBMITTED, want the payout Wompi holds adopted", tx.RequestID, n)
		}
	}
	if ok, err := e.budget.Holds(ctx, newReservation(&b, b.OriginAccountID, b.TotalAmountInCents, f.clock.Now())); err != nil || !ok {
		t.Fatalf("the batch's reservation was given back (%v) while Wompi pays it", err)
	}
}

// cutOffWhilePosting leaves b as a replica cut off with its POST in flight
// leaves it: claimed, hold run (its reservation, if any), its record
// posting since now (firstPostAt), its lease run out.
func cutOffWhilePosting(t *testing.T, e *Engine, b payout.Batch, hold func()) {
	t.Helper()
	ctx := context.Background()
	epoch, ready, err := e.st.epoch(ctx)
	if err != nil || !ready {
		t.Fatalf("epoch %q ready %v: %v", epoch, ready, err)
	}
	if c, err := e.st.claim(ctx, "cut-off-while-posting", epoch, b.BatchID, rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("the cut-off replica's claim: %+v %v", c, err)
	}
	if hold != nil {
		hold()
	}
	if _, err := e.st.transition(ctx, "cut-off-while-posting", epoch, b.BatchID, []string{stateClaimed}, statePosting,
		"?firstPostAt", strconv.FormatInt(e.now().UnixMilli(), 10)); err != nil {
		t.Fatal(err)
	}
	if err := e.st.rdb.HSet(ctx, e.st.batchKey(b.BatchID), "lease", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
