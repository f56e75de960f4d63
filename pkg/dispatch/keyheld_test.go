package dispatch

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Two faults lined up on a scheduled batch: its first POST is applied and
// its answer lost, and Wompi's lookup by reference does not show the
// payout. The retry's 409 EXC_022 proves that Wompi holds the key, and the
// batch is moved aside (deferred PAYOUT_NOT_VISIBLE). The payout still not
// listed when the copy comes back on its dispersion day, the copy's
// lookupSettled found nothing and took the batch as absent: REJECTED
// INVALID_DISPERSION_DATETIME, without a POST, for requests Wompi pays that
// very day. The 409 was forgotten with the attempt that saw it.
func TestKeyHeldPayoutNotRejectedWhenItsDispersionDayComes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return faultCommitTimeout // Wompi creates the batch; the answer never comes
		}
		return faultNone // the retry meets the key Wompi holds: 409 EXC_022
	}
	var hide atomic.Bool
	hide.Store(true)
	engine := func() *Engine {
		return f.engine(func(c *Config) {
			c.HTTPTimeout = 500 * time.Millisecond
			c.RecoveryGrace = time.Second
			c.LookupPatience = 300 * time.Millisecond
			c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: refHidden{base: f.tap, hide: &hide}}), wompi.RailConfig{})
		})
	}
	at := testStart.Add(23 * time.Hour) // tomorrow 09:00 Bogota
	b := simpleBatch("keyheld-disp", 2)
	b.Schedule.DispersionDatetime = &at
	b2 := b
	if err := engine().process(context.Background(), &b2, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("setup: %d POSTs, want 2 (the second answered 409 EXC_022)", n)
	}
	deferred := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	if len(deferred) != 1 {
		t.Fatalf("setup: %d deferred copies, want 1 (PAYOUT_NOT_VISIBLE)", len(deferred))
	}
	var cp payout.Batch
	if err := f.codec.DecodeBatch(deferred[0].Value, &cp); err != nil {
		t.Fatal(err)
	}

	// The copy comes back on the dispersion day, the payout still not listed.
	f.clock.Advance(24 * time.Hour)
	cp2 := cp
	if err := engine().process(context.Background(), &cp2, nil, testLogger()); err != nil {
		t.Fatalf("the copy's attempt: %v", err)
	}
	f.noneRejectedWhilePaid(t, b, "the 409 EXC_022 proved Wompi holds the batch's key, and its payout pays on its dispersion day")

	// Once the payout shows, the next copy adopts it: every request SUBMITTED.
	hide.Store(false)
	deferred = f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	if err := f.codec.DecodeBatch(deferred[len(deferred)-1].Value, &cp); err != nil {
		t.Fatal(err)
	}
	if err := engine().process(context.Background(), &cp, nil, testLogger()); err != nil {
		t.Fatalf("the last copy's attempt: %v", err)
	}
	f.noDoublePayment()
	f.checkSubmitted(b)
	f.checkLifecycles()
}
