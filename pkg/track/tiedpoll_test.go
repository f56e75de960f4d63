package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// The tracker's side of ac3d0ed: a Wompi batch whose transactions listing
// spans more than one page (two a page here, three transactions), read
// while the ties on createdAt come back in another order from one page
// query to the next, so the listing repeats one transaction and never
// yields another (hide), its total unchanged. Every webhook is lost and
// the simulator settles everything. The poll counted the repeat, read the
// listing as complete (as many as totalTransactions), and with every
// transaction it read final and the batch final took the payout off the
// schedule: hide's final status was never emitted and its request stalled.
// The repeat counts once now: the listing reads short, the payout stays on
// the schedule, and a later poll, whose listing comes back whole, emits
// hide's final status.
func TestTiedListingRepeatDoesNotEndThePoll(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, pageSize: 2})
	// No webhook URL: every webhook of the batch is lost.
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("9991234567"))
	hide := c.txs[0].Reference
	tied := &wompitest.TiedPages{Base: http.DefaultTransport, Hide: hide, Behind: 4} // two polls of two pages each
	wc, err := wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, PageSize: 2, HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tied}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.engine(func(cfg *Config) { cfg.Wompi = f.rail(wc, f.sim.Config().EventsSecret) })
	ctx := context.Background()

	f.sim.Advance(5 * time.Second) // every transaction and the batch settle
	if p, err := f.wompi.Payout(ctx, c.payoutID); err != nil || p.Status != wompi.BatchStatus(payout.BatchTotalPayment) {
		t.Fatalf("batch at Wompi: %+v %v", p, err)
	}
	// The listing repeats a transaction where hide would be.
	var seen []string
	read := map[string]bool{}
	for tx, err := range wc.PayoutTransactions(ctx, c.payoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, tx.Reference)
		read[tx.Reference] = true
	}
	if len(seen) != len(c.txs) || read[hide] {
		t.Fatalf("setup: the shifted listing read %v, want %d transactions, one of them twice, without %s", seen, len(c.txs), hide)
	}
	tied.Reads.Store(0)

	// The polls while the listing is shifted: the payout stays scheduled.
	for n := 1; tied.Reads.Load() < tied.Behind; n++ {
		if n > 10 {
			t.Fatalf("%d shifted pages of %d after %d polls", tied.Reads.Load(), tied.Behind, n-1)
		}
		f.clock.Advance(e.cfg.PollMaxBackoff) // the payout is due, whatever its backoff
		res, err := e.PollOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("poll %d (shifted listing): %+v", n, res)
		if res.Done != 0 {
			t.Errorf("poll %d: the payout left the schedule on a listing that repeated one transaction and never read %s", n, hide)
			break // nothing polls it again: the checks below see what that costs
		}
		if sch, err := f.sub.Scheduled(ctx); err != nil || sch != 1 {
			t.Fatalf("poll %d: scheduled %d %v, want the payout still polled", n, sch, err)
		}
	}
	// The listing comes back whole: the next polls end the payout.
	done := 0
	for range 3 {
		f.clock.Advance(e.cfg.PollMaxBackoff)
		res, err := e.PollOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("later poll: %+v", res)
		done += res.Done
	}
	if done != 1 && !t.Failed() {
		t.Errorf("the payout left the schedule %d times after the listing came back whole, want once", done)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for _, tx := range c.txs {
		wt, err := f.wompi.PayoutTransaction(ctx, c.payoutID, tx.ID)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := wompi.TransactionStatus(wt.Status).PayoutStatus()
		if !st.Final() {
			t.Fatalf("%s: Wompi holds %s, want it settled", tx.Reference, wt.Status)
		}
		if got := statusesOf(evs, tx.Reference); len(got) == 0 || got[len(got)-1] != st {
			t.Errorf("%s: statuses %v after Wompi settled it %s: the request stalls", tx.Reference, got, st)
		}
	}
}
