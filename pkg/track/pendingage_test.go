package track

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// The gauge keeps the oldest age seen over the last one to two windows:
// a larger age wins, an observation stays through the next window, and
// one two windows old (or a long silence) is gone.
func TestPendingAgesKeepTheOldestOverTwoWindows(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := newPendingAges(time.Hour, func() time.Time { return now })
	p.observe(rail.Wompi, 3*time.Hour)
	p.observe(rail.Wompi, 2*time.Hour)
	p.observe(rail.WEpayout, time.Minute)
	if got := p.oldest(rail.Wompi); got != 3*time.Hour {
		t.Fatalf("oldest wompi %v, want 3h", got)
	}
	if got := p.oldest(rail.SmartFastPay); got != 0 {
		t.Fatalf("a rail with nothing pending: %v", got)
	}
	now = now.Add(90 * time.Minute) // the next window: still shown
	if got := p.oldest(rail.Wompi); got != 3*time.Hour {
		t.Fatalf("one window on: %v, want 3h", got)
	}
	p.observe(rail.Wompi, 4*time.Hour)
	now = now.Add(time.Hour) // the 3h one is two windows old now
	if got := p.oldest(rail.Wompi); got != 4*time.Hour {
		t.Fatalf("two windows on: %v, want the later 4h", got)
	}
	if got := p.oldest(rail.WEpayout); got != 0 {
		t.Fatalf("an observation two windows old is still shown: %v", got)
	}
	now = now.Add(10 * time.Hour) // silence
	if got := p.oldest(rail.Wompi); got != 0 {
		t.Fatalf("after a long silence: %v", got)
	}
	p.observe(rail.SmartFastPay, -time.Second) // an unknown age is not one
	if got := p.oldest(rail.SmartFastPay); got != 0 {
		t.Fatalf("a negative age was kept: %v", got)
	}
}

// A payout each rail's poll finds still not final shows its age since its
// submission in payouts_tracker_oldest_pending_payout_age_seconds; once the
// poll finds it final, the figure falls to 0 within two windows.
func TestOldestPendingPayoutAgeFollowsThePolls(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	c := f.submit(true, f.payee("1234567890"))
	wpending := f.wepPayout(srv.URL, "99") // stays processing
	f.handOff(s.wepc, wpending)
	f.clock.Advance(5 * time.Hour)
	if res, err := e.PollOnce(ctx); err != nil || res.Claimed != 2 || res.Done != 0 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	for _, n := range []rail.Name{rail.Wompi, rail.WEpayout} {
		if got := e.m.pending.oldest(n); got != 5*time.Hour {
			t.Fatalf("%s: oldest pending %v, want 5h", n, got)
		}
	}
	if got := e.m.pending.oldest(rail.SmartFastPay); got != 0 {
		t.Fatalf("smartfastpay: %v with nothing pending", got)
	}
	want := `
# HELP payouts_tracker_oldest_pending_payout_age_seconds The oldest age (since its submission) at which a poll of this replica found a payout still not final, over the last one to two twice-POLL_MAX_BACKOFF windows, by rail; 0 when none. A Wompi batch scheduled for a later dispersion is left out until then, and aged from it.
# TYPE payouts_tracker_oldest_pending_payout_age_seconds gauge
payouts_tracker_oldest_pending_payout_age_seconds{rail="smartfastpay"} 0
payouts_tracker_oldest_pending_payout_age_seconds{rail="wepayout"} 18000
payouts_tracker_oldest_pending_payout_age_seconds{rail="wompi"} 18000
`
	if err := testutil.CollectAndCompare(e.m.pending, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// Both settle; the next polls find them final.
	f.sim.SettleAll()
	if err := s.wep.SetStatus(wpending.ID, "3"); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.clock.Advance(time.Hour)
	if res, err := e.PollOnce(ctx); err != nil || res.Done != 2 {
		t.Fatalf("poll after settlement: %+v %v (payout %s)", res, err, c.payoutID)
	}
	f.clock.Advance(2 * 2 * e.cfg.PollMaxBackoff)
	for _, n := range []rail.Name{rail.Wompi, rail.WEpayout} {
		if got := e.m.pending.oldest(n); got != 0 {
			t.Fatalf("%s: %v after every payout ended", n, got)
		}
	}
}

// A Wompi batch scheduled days ahead is pending from its dispersion, not
// from its submission: an hour past its dispersion it is an hour old in
// the gauge (four days and an hour from its submission would fire
// PayoutsPayoutStuckPending while it settles).
func TestScheduledBatchIsPendingFromItsDispersion(t *testing.T) {
	f := newFixture(t, fixtureOpts{sim: wompitest.Config{Faults: wompitest.Faults{WebhookDropRate: 1}}})
	ctx := context.Background()
	dispersion := t0.Add(4 * 24 * time.Hour).Truncate(time.Minute)
	f.seq++
	batchID := fmt.Sprintf("batch-%s-%d", shortName(t), f.seq)
	res, err := f.wompi.CreatePayout(ctx, "key-"+batchID, &wompi.CreatePayoutRequest{Reference: batchID,
		AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypeProviders, DispersionDatetime: dispersion,
		Transactions: []wompi.TransactionRequest{f.payee("1234567890")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: res.PayoutID, BatchID: batchID, OriginAccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypeProviders, TotalAmountInCents: 100000, TransactionCount: 1, SubmittedAt: f.clock.Now()},
		nil, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e, _ := f.engine()
	f.clock.Set(dispersion.Add(time.Hour))
	if res, err := e.PollOnce(ctx); err != nil || res.Claimed != 1 || res.Done != 0 {
		t.Fatalf("poll past the dispersion: %+v %v", res, err)
	}
	if got := e.m.pending.oldest(rail.Wompi); got != time.Hour {
		t.Fatalf("oldest pending %v an hour past the dispersion, want 1h", got)
	}
}
