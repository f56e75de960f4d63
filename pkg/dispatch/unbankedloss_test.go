package dispatch

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Two faults (review of the unbanked drops across a Redis loss): a first
// attempt reads a bank table that lacks payee U's bank (without1007), drops
// U (UNKNOWN_BANK_ID) and posts the batch without U: Wompi holds a payout
// without U. The attempt dies after the POST, before U's REJECTED is
// produced (a crash, or a client closed with it unsent), and Redis loses
// our state. The recovery indexes what Wompi lists (not U) and finds no
// REJECTED of U on the status topic, so the next attempt, reading the whole
// bank table, keeps U, finds the batch by reference and adopts it. Wompi
// will never pay U in that payout; unless the attempt ends U itself, U waits
// for a status no one emits.
//
// crashedWithoutUnbanked runs that first attempt and the loss, and returns
// the fixture, the batch and U.
func crashedWithoutUnbanked(t *testing.T, name string) (*fixture, payout.Batch, string) {
	t.Helper()
	f := newFixture(t, fixtureOpt{partitions: 1, ownRedis: true})
	b := simpleBatch(name, 2)
	b.Transactions[1].Beneficiary.BankCode = "1001" // always listed
	u := b.Transactions[0].RequestID
	e1 := f.engine(func(c *Config) {
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: without1007{base: f.tap}}), wompi.RailConfig{})
	})
	e1.afterPost = func(string) error { return errors.New("test: the replica dies after the POST") }
	b1 := b
	if err := e1.process(context.Background(), &b1, nil, testLogger()); !errors.Is(err, errCrashed) {
		t.Fatalf("the first attempt: %v, want a crash", err)
	}
	if le, ok := f.sim.LedgerEntry(u); ok && le.Accepted > 0 {
		t.Fatalf("setup: %s, dropped for its bank, is in the payout Wompi holds", u)
	}
	if le, ok := f.sim.LedgerEntry(b.Transactions[1].RequestID); !ok || le.Accepted != 1 {
		t.Fatal("setup: Wompi does not hold the first attempt's payout")
	}
	if len(f.statuses()) != 0 {
		t.Fatal("setup: the first attempt emitted statuses before its crash")
	}
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f, b, u
}

// everyRequestEnded checks that each request of b is either paid exactly
// once (in one payout Wompi holds, and never REJECTED) or in none with a
// final status (and no SUBMITTED, which names a payout that does not hold
// it), and the status topic's contract.
func (f *fixture) everyRequestEnded(t *testing.T, b payout.Batch) {
	t.Helper()
	f.noDoublePayment()
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		rid := tx.RequestID
		accepted := 0
		if le, ok := f.sim.LedgerEntry(rid); ok {
			accepted = le.Accepted
		}
		final := 0
		for st, evs := range idx[rid] {
			if st.Final() {
				final += len(evs)
			}
		}
		switch {
		case accepted > 1:
			t.Errorf("%s accepted %d times by Wompi", rid, accepted)
		case accepted == 1 && len(idx[rid][payout.StatusRejected]) > 0:
			t.Errorf("%s is in a payout Wompi holds, yet REJECTED on the status topic", rid)
		case accepted == 0 && len(idx[rid][payout.StatusSubmitted]) > 0:
			t.Errorf("%s is in no payout, yet SUBMITTED (for a payout that does not hold it): it will never get a final status", rid)
		case accepted == 0 && final == 0:
			t.Errorf("%s is in no payout and has no final status: a request lost (statuses: %v)", rid, statusNames(idx[rid]))
		}
	}
	f.checkLifecycles()
}

func statusNames(m map[payout.Status][]payout.StatusChange) []payout.Status {
	out := make([]payout.Status, 0, len(m))
	for st := range m {
		out = append(out, st)
	}
	return out
}

// The next attempt finds the payout at once and adopts it (foundAfterLoss).
func TestUnbankedPayeeLostWithItsRejectedIsEndedWhenAnAdoptedPayoutLacksIt(t *testing.T) {
	t.Parallel()
	f, b, u := crashedWithoutUnbanked(t, "unbanked-loss")
	b2 := b
	if err := f.engine(nil).process(context.Background(), &b2, nil, testLogger()); err != nil {
		t.Fatalf("the attempt after the loss: %v", err)
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1 (the adopted payout's)", n)
	}
	f.everyRequestEnded(t, b)
	if rj := byStatus(f.statuses())[u][payout.StatusRejected]; len(rj) != 1 || rj[0].ReasonCode == nil ||
		*rj[0].ReasonCode != string(payout.ReasonUnknownBankID) {
		t.Errorf("%s: REJECTED %+v, want one with UNKNOWN_BANK_ID", u, rj)
	}
}

// The variant: the next attempt's lookup does not show the payout (Wompi's
// read side behind), so it posts and meets 409 EXC_022; the payout not
// showing within LookupPatience, the batch is deferred with U kept. The
// copy's attempt, once the payout shows, adopts it.
func TestUnbankedPayeeLostWithItsRejectedIsEndedWhenADeferredCopyAdoptsAPayoutLackingIt(t *testing.T) {
	t.Parallel()
	f, b, _ := crashedWithoutUnbanked(t, "unbanked-loss-deferred")
	var hide atomic.Bool
	hide.Store(true)
	e2 := f.engine(func(c *Config) {
		c.LookupPatience = 300 * time.Millisecond
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: refHidden{base: f.tap, hide: &hide}}), wompi.RailConfig{})
	})
	b2 := b
	if err := e2.process(context.Background(), &b2, nil, testLogger()); err != nil {
		t.Fatalf("the attempt after the loss: %v", err)
	}
	f.checkLifecycles()
	cs := deferredCopies(f)
	if len(cs) != 1 {
		t.Fatalf("setup: %d deferred copies, want 1 (the payout not visible)", len(cs))
	}
	hide.Store(false)
	cp := cs[0]
	if err := f.engine(nil).process(context.Background(), &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy's attempt: %v", err)
	}
	f.everyRequestEnded(t, b)
}

// The guard's other side: a kept payee that an adopted payout does not list
// yet is REJECTED only once the listing is the payout's word. A first
// attempt's POST carries both payees and Wompi creates the batch (its
// answer lost); the next attempt, both payees kept, finds the payout by
// reference and reads its transactions from a server copy behind the
// write that lacks payee 0 for longer than its re-reads. The payout counts
// two transactions (or gives no count) and lists one: the attempt fails
// (retried, the record says posted) rather than REJECT a payee Wompi pays.
func TestKeptPayeeOfAnAdoptedPayoutWaitsForALaggingListing(t *testing.T) {
	t.Parallel()
	for _, noCount := range []bool{false, true} {
		t.Run(map[bool]string{false: "counted", true: "no count"}[noCount], func(t *testing.T) {
			f := newFixture(t, fixtureOpt{partitions: 1})
			b, timing := postAppliedAnswerLost(t, f, "kept-lagging")
			lagging := b.Transactions[0].RequestID
			lag := &txListingBehind{base: f.tap, hide: lagging, behind: 10}
			var tr http.RoundTripper = lag
			if noCount {
				tr = noItemCount{base: lag}
			}
			e2 := f.engine(func(c *Config) {
				timing(c)
				c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: tr}), wompi.RailConfig{})
			})
			var err error
			for n := 1; n <= 2; n++ {
				b2 := b
				if err = e2.process(context.Background(), &b2, nil, testLogger()); err == nil {
					break
				}
				t.Logf("attempt %d: %v", n, err)
				f.noneRejectedWhilePaid(t, b, "the listing read behind the write did not show the payee yet")
			}
			if err != nil {
				t.Fatalf("the batch did not end within 2 attempts: %v", err)
			}
			if n := len(f.tap.snapshot()); n != 1 {
				t.Fatalf("%d POSTs, want 1 (the payout is found by reference)", n)
			}
			f.everyRequestEnded(t, b)
			if lag.reads.Load() <= 10 {
				t.Fatalf("%d listings read: the payee was never listed", lag.reads.Load())
			}
			if s := byStatus(f.statuses())[lagging][payout.StatusSubmitted]; len(s) == 0 || s[len(s)-1].TransactionID == nil {
				t.Errorf("%s, in the payout Wompi holds: SUBMITTED %+v, want one naming its transaction", lagging, s)
			}
		})
	}
}
