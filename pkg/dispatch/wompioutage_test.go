package dispatch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// wompiDown makes the simulator answer 503 to every API call, and /health
// UNHEALTHY, or lifts both.
func (f *fixture) wompiDown(down bool) {
	f.sim.UpdateFaults(func(fl *wompitest.Faults) {
		fl.Unhealthy = down
		fl.ErrorRate = 0
		if down {
			fl.ErrorRate = 1
		}
	})
}

// paidOnceAfterOutage lets the deferred copy of b come due once Wompi is
// back, waits for it to be submitted, stops the engine and asserts one
// payout at Wompi, no transaction paid twice and whole lifecycles.
func (f *fixture) paidOnceAfterOutage(e *Engine, stop func() error, b payout.Batch) {
	f.t.Helper()
	f.clock.Advance(3 * time.Second) // the deferred copy is due
	eventually(f.t, "the batch adopted after the outage", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	f.noDoublePayment()
	f.checkLifecycles()
	if n := f.sim.BatchLedger()[b.BatchID].Accepted; n != 1 {
		f.t.Fatalf("Wompi holds %d payouts for the batch, want 1", n)
	}
}

// deferredUnavailable asserts that every request of b got a DEFERRED
// RAIL_UNAVAILABLE.
// waitDeferred waits until each of requests has its DEFERRED on the
// status topic: one payee's alone is no sign of the others', which a read
// of the topic's partitions may not show yet.
func (f *fixture) waitDeferred(requests ...string) {
	f.t.Helper()
	eventually(f.t, "the batch deferred by the outage", func() bool {
		idx := byStatus(f.statuses())
		for _, id := range requests {
			if len(idx[id][payout.StatusDeferred]) == 0 {
				return false
			}
		}
		return true
	})
}

// requestIDs are the batch's requests' ids.
func requestIDs(b payout.Batch) []string {
	ids := make([]string, len(b.Transactions))
	for i, tx := range b.Transactions {
		ids[i] = tx.RequestID
	}
	return ids
}

func (f *fixture) deferredUnavailable(b payout.Batch) {
	f.t.Helper()
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		def := idx[tx.RequestID][payout.StatusDeferred]
		if len(def) == 0 || def[0].ReasonCode == nil || *def[0].ReasonCode != string(rail.ReasonRailUnavailable) {
			f.t.Fatalf("%s during the Wompi outage: DEFERRED %+v, want RAIL_UNAVAILABLE", tx.RequestID, def)
		}
	}
}

// One rail's outage does not hold another rail's batches, Wompi's either:
// Wompi answers 503 to everything (GET /banks included, so the dispatcher
// has no bank table) while a Wompi batch and then a SmartFastPay batch wait
// on the same partition. Past its patience the Wompi batch waits on the
// deferred topic (DEFERRED RAIL_UNAVAILABLE) and the SmartFastPay batch is
// paid while Wompi is still down; once Wompi is back, the Wompi batch is
// paid, once.
func TestWompiOutageDoesNotHoldOtherRails(t *testing.T) {
	t.Parallel()
	sfp := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.wompiDown(true)
	e := sfp.engine(f, func(c *Config) { c.RailPatience, c.RailRetry = time.Second, 2*time.Second })
	bw, bs := simpleBatch("wompi-down", 3), singleBatch(sfp, "wompi-down-sfp", 3)
	f.produce(f.topics.Batches, bw, bs)
	stop, _ := f.run(e)
	eventually(t, "the SmartFastPay batch paid during the Wompi outage", func() bool { return outcome(e, "submitted") == 1 })
	if n := f.sim.BatchLedger()[bw.BatchID].Accepted; n != 0 {
		t.Fatal("the Wompi batch was created while Wompi answered 503 to everything")
	}
	f.deferredUnavailable(bw)
	f.checkSinglePaid(sfp, bs, nil)

	f.wompiDown(false)
	f.clock.Advance(3 * time.Second) // the deferred copy is due
	eventually(t, "the Wompi batch paid after the outage", func() bool { return outcome(e, "submitted") == 2 })
	_ = stop()
	f.noDoublePayment()
	f.checkSubmitted(bw)
}

// Two faults in a row: the first POST creates the payout and its answer is
// lost; then Wompi goes down for longer than the dispatcher's patience. The
// batch waits on the deferred topic keeping its reservation, and its
// DEFERRED goes through the status gate: a webhook of the payout Wompi
// already holds made the tracker emit APPROVED for one request, and a
// DEFERRED after it would break that request's lifecycle. When Wompi is
// back, the batch is looked up by reference before any POST and adopted:
// one payout, each request paid once.
func TestLostAnswerThenWompiOutagePaysOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := simpleBatch("lost-then-down", 3)
	var down atomic.Bool // Wompi refuses every later POST with a 503
	down.Store(true)
	f.tap.fault = func(n int) fault {
		switch {
		case n == 1:
			return faultCommitTimeout
		case down.Load():
			return fault503
		}
		return faultNone
	}
	e := f.engine(func(c *Config) {
		c.HTTPTimeout = 300 * time.Millisecond
		c.RailPatience, c.RailRetry = time.Second, 2*time.Second
	})
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the payout created by the lost POST", func() bool { return f.sim.BatchLedger()[b.BatchID].Accepted == 1 })
	f.trackerEmitted(b, 0, payout.StatusApproved)
	f.waitDeferred(b.Transactions[1].RequestID, b.Transactions[2].RequestID)
	idx := byStatus(f.statuses())
	if d := idx[b.Transactions[0].RequestID][payout.StatusDeferred]; len(d) != 0 {
		t.Fatalf("DEFERRED emitted after the tracker's APPROVED: %+v", d)
	}
	if d := idx[b.Transactions[2].RequestID][payout.StatusDeferred]; len(d) != 1 || *d[0].ReasonCode != string(rail.ReasonRailUnavailable) {
		t.Fatalf("DEFERRED %+v, want one RAIL_UNAVAILABLE", d)
	}
	day, _ := budgetDays(&b, e.now())
	u, err := e.budget.Usage(t.Context(), rail.Wompi, day, b.OriginAccountID)
	if err != nil || u.AmountInCents < b.TotalAmountInCents {
		t.Fatalf("budget during the deferral: %+v %v, want the batch's %d still reserved (the payout may be at Wompi)", u, err, b.TotalAmountInCents)
	}

	down.Store(false)
	f.paidOnceAfterOutage(e, stop, b)
}

// heldAndForgotten is a fixture whose Wompi holds a batch of two payees
// named name, as a dispatcher's POST left it, and has since forgotten the
// POST's idempotency key: a POST of the same batch would be a second
// payout.
func heldAndForgotten(t *testing.T, name string) (*fixture, payout.Batch) {
	t.Helper()
	f := newFixture(t, fixtureOpt{partitions: 1, sim: wompitest.Config{IdempotencyTTL: time.Hour}})
	b := simpleBatch(name, 2)
	f.wompiHolds(b)
	f.clock.Advance(2 * time.Hour) // Wompi forgot the key
	return f, b
}

// wompiHolds creates b at the simulator as the dispatcher would have
// posted it, under its idempotency key: a POST from before a Redis loss.
func (f *fixture) wompiHolds(b payout.Batch) {
	f.t.Helper()
	if err := f.wompiCreate(b); err != nil {
		f.t.Fatal(err)
	}
}

// wompiCreate has Wompi create batch b under its idempotency key, as a
// dispatcher's POST would (on its dispersion day, if scheduled).
func (f *fixture) wompiCreate(b payout.Batch) error {
	req := &wompi.CreatePayoutRequest{Reference: b.BatchID, AccountID: b.OriginAccountID, PaymentType: string(b.PaymentType)}
	if d := b.Schedule.DispersionDatetime; d != nil {
		req.DispersionDatetime = *d
	}
	for _, tx := range b.Transactions {
		p := tx.Beneficiary
		req.Transactions = append(req.Transactions, wompi.TransactionRequest{LegalIDType: string(p.LegalIDType), LegalID: p.LegalID,
			BankID: wompitest.BankID(p.BankCode), AccountType: string(p.AccountType), AccountNumber: p.AccountNumber,
			Name: p.Name, Email: p.Email, Amount: tx.AmountInCents, Reference: tx.RequestID})
	}
	_, err := f.sim.Client(nil).CreatePayout(context.Background(), idempotencyKey(b.BatchID), req)
	return err
}

// Two faults: Redis lost the record of a batch Wompi already holds (its
// claim is fresh), and Wompi fails every lookup for longer than the
// dispatcher's patience. The batch waits on the deferred topic, and when it
// comes back it is still looked up by reference before any POST, although
// its record is no longer fresh: Wompi has forgotten the idempotency key
// meanwhile, so a POST would create a second payout.
func TestFreshClaimDeferredByOutageIsLookedUpFirst(t *testing.T) {
	t.Parallel()
	f, b := heldAndForgotten(t, "forgotten")
	f.wompiDown(true)
	e := f.engine(func(c *Config) { c.RailPatience, c.RailRetry = time.Second, 2*time.Second })
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	f.waitDeferred(requestIDs(b)...)
	f.deferredUnavailable(b)
	f.wompiDown(false)
	f.paidOnceAfterOutage(e, stop, b)
}

// A batch deferred RAIL_UNAVAILABLE again and again waits longer each time,
// up to 16 times RailRetry: a long outage emits a DEFERRED per payee every
// 16 minutes, not every minute.
func TestRailRetryBacksOff(t *testing.T) {
	t.Parallel()
	e := &Engine{cfg: Config{RailRetry: time.Minute}}
	for attempt, want := range map[int32]time.Duration{0: time.Minute, 1: 2 * time.Minute, 3: 8 * time.Minute,
		4: 16 * time.Minute, 9: 16 * time.Minute, -1: time.Minute} {
		if got := e.railRetryAfter(attempt); got != want {
			t.Errorf("attempt %d: wait %v, want %v", attempt, got, want)
		}
	}
}
