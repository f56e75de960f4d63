package track

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Every webhook is dropped: the poll (several pages of transactions)
// catches each transition, with source POLL, then drops the payout from the
// schedule.
func TestDroppedWebhooksCaughtByPoll(t *testing.T) {
	f := newFixture(t, fixtureOpts{pageSize: 2, sim: wompitest.Config{Faults: wompitest.Faults{WebhookDropRate: 1}}})
	e, srv := f.engine(nil)
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	ctx := context.Background()
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("1234567891"), f.payee("1234567892"), f.payee("1234567019"))

	res, err := e.PollOnce(ctx) // before settlement: PENDING for each
	if err != nil || res.Claimed != 1 || res.Done != 0 {
		t.Fatalf("first poll: %+v %v", res, err)
	}
	if again, _ := e.PollOnce(ctx); again.Claimed != 0 {
		t.Fatalf("a rescheduled payout was claimed again at once: %+v", again)
	}
	// Polled again with nothing changed: the poll digest skips the
	// transactions (no status CAS runs; without it each would count as a
	// duplicate).
	dups := testutil.ToFloat64(e.m.duplicates.WithLabelValues(string(kindRequest)))
	f.clock.Advance(backoff(0))
	if res, err := e.PollOnce(ctx); err != nil || res.Claimed != 1 || res.Transitions != 0 {
		t.Fatalf("unchanged poll: %+v %v", res, err)
	}
	if got := testutil.ToFloat64(e.m.duplicates.WithLabelValues(string(kindRequest))); got != dups {
		t.Fatalf("an unchanged poll ran the status CAS of %v transactions", got-dups)
	}
	f.sim.SettleAll()
	f.waitHooks()
	if st := f.sim.WebhookStats(); st.Dropped == 0 || st.Delivered != 0 {
		t.Fatalf("simulator did not drop the webhooks: %+v", st)
	}
	f.clock.Advance(backoff(0))
	res, err = e.PollOnce(ctx)
	if err != nil || res.Claimed != 1 || res.Done != 1 {
		t.Fatalf("poll after settlement: %+v %v", res, err)
	}
	if n, _ := f.sub.Scheduled(ctx); n != 0 {
		t.Fatalf("%d payouts still scheduled after every status is final", n)
	}
	evs := f.statusEvents()
	checkMonotonic(t, evs)
	byKey := transitions(evs)
	for _, tx := range c.txs {
		final, code := "APPROVED", ""
		switch {
		case strings.HasSuffix(tx.PayeeInfo.AccountNumber, "007"):
			final, code = "FAILED", "D07"
		case strings.HasSuffix(tx.PayeeInfo.AccountNumber, "019"):
			final, code = "FAILED", "D19"
		}
		for _, st := range []string{"PENDING", final} {
			got := byKey[tx.Reference+"/"+st]
			if len(got) != 1 || got[0].Source != payout.SourcePoll {
				t.Fatalf("%s %s: %+v", tx.Reference, st, got)
			}
		}
		ev := byKey[tx.Reference+"/"+final][0]
		if deref(ev.ReasonCode) != code || ev.PreviousStatus == nil || *ev.PreviousStatus != payout.StatusPending ||
			deref(ev.BatchID) != c.batchID || deref(ev.PayoutID) != c.payoutID {
			t.Fatalf("%s final event: %+v", tx.Reference, ev)
		}
	}
	bevs := f.batchEvents()
	if len(bevs) != 2 || bevs[0].Status != payout.BatchPending || bevs[1].Status != payout.BatchTotalPayment ||
		bevs[1].Source != payout.SourcePoll || bevs[1].TransactionCount != 5 || bevs[1].PaymentType != payout.PaymentProviders {
		t.Fatalf("batch events: %+v", bevs)
	}
	if got := testutil.ToFloat64(e.m.polls.WithLabelValues("done")); got != 1 {
		t.Fatalf("polls done metric: %v", got)
	}
}

// Two replicas behind one sender get every webhook (the simulator also
// duplicates and drops some); both poll at the same time. Each transition
// is emitted once.
func TestTwoReplicasEmitEachTransitionOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{sim: wompitest.Config{WebhookWorkers: 8,
		Faults: wompitest.Faults{WebhookDuplicateRate: 0.5, WebhookDropRate: 0.2}, Seed: 7}})
	e1, srv1 := f.engine(nil)
	e2, srv2 := f.engine(nil)
	fan := fanOut(t, srv1.URL, srv2.URL)
	f.sim.SetWebhookURL(fan.URL + WebhookPath)
	var all []string
	for b := range 3 {
		var txs []string
		_ = b
		c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("1234567891"), f.payee("1234567892"),
			f.payee("9991234567"), f.payee("1234567893"))
		for _, tx := range c.txs {
			txs = append(txs, tx.Reference)
		}
		all = append(all, txs...)
	}
	f.sim.SettleAll()
	f.waitHooks()
	// A webhook that came before submit's hand-off put its payout on the
	// schedule for its first poll (enrollBatch), which the hand-off keeps.
	f.clock.Advance(FirstPollInterval)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, e := range []*Engine{e1, e2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.PollOnce(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	evs := f.statusEvents()
	checkMonotonic(t, evs)
	seen := map[string]int{}
	finals := map[string]int{}
	for _, ev := range evs {
		seen[ev.EventID]++
		if ev.Status.Final() {
			finals[ev.RequestID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("eventId %s emitted %d times", id, n)
		}
	}
	for _, r := range all {
		if finals[r] != 1 {
			t.Errorf("request %s: %d final events, want 1", r, finals[r])
		}
	}
	bseen := map[string]int{}
	for _, b := range f.batchEvents() {
		bseen[b.EventID]++
	}
	for id, n := range bseen {
		if n != 1 {
			t.Errorf("batch eventId %s emitted %d times", id, n)
		}
	}
	accepted := testutil.ToFloat64(e1.m.webhooks.WithLabelValues(ResultAccepted)) + testutil.ToFloat64(e2.m.webhooks.WithLabelValues(ResultAccepted))
	dups := testutil.ToFloat64(e1.m.webhooks.WithLabelValues(ResultDuplicate)) + testutil.ToFloat64(e2.m.webhooks.WithLabelValues(ResultDuplicate))
	if accepted == 0 || dups == 0 {
		t.Fatalf("accepted %v duplicates %v: both replicas should have had work", accepted, dups)
	}
}

// After a FLUSHALL the schedule is rebuilt from GET
// /payouts?status=PENDING,PARTIAL_PAYMENT (plus recent final ones with a
// lookback), by one replica only.
func TestPollScheduleRebuiltAfterFlush(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, pageSize: 1})
	e, _ := f.engine(func(c *Config) { c.RebuildLookback = -1 })
	ctx := context.Background()
	settled := f.submit(true, f.payee("1234567890"))
	f.sim.SettleAll() // TOTAL_PAYMENT: final, not rebuilt without lookback
	f.clock.Advance(time.Hour)
	a := f.submit(true, f.payee("1234567890"))
	b := f.submit(true, f.payee("1234567891"), f.payee("1234567892"))
	_ = settled
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	// Another replica holds the rebuild lock: this one does not rebuild.
	if err := f.redis.Client().Set(ctx, f.prefix+"track:rebuild-lock", "other", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := e.PollOnce(ctx); err != nil || res.Rebuilt || res.Claimed != 0 {
		t.Fatalf("poll while another replica rebuilds: %+v %v", res, err)
	}
	f.redis.Client().Del(ctx, f.prefix+"track:rebuild-lock")

	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt || res.Claimed != 2 {
		t.Fatalf("poll after flush: %+v %v", res, err)
	}
	if ready, _ := f.sub.Ready(ctx); !ready {
		t.Fatal("schedule not marked ready after the rebuild")
	}
	if n, _ := f.sub.Scheduled(ctx); n != 2 {
		t.Fatalf("%d payouts scheduled, want the 2 non-final ones", n)
	}
	if got := testutil.ToFloat64(e.m.rebuilds); got != 1 {
		t.Fatalf("rebuilds metric: %v", got)
	}
	if res, _ := e.PollOnce(ctx); res.Rebuilt {
		t.Fatal("rebuilt twice")
	}
	// The rebuilt schedule carries the payouts to the end.
	f.sim.SettleAll()
	f.clock.Advance(time.Minute)
	res, err = e.PollOnce(ctx)
	if err != nil || res.Done != 2 {
		t.Fatalf("final poll: %+v %v", res, err)
	}
	byKey := transitions(f.statusEvents())
	for _, tx := range append(a.txs, b.txs...) {
		if len(byKey[tx.Reference+"/APPROVED"]) != 1 {
			t.Errorf("%s: no APPROVED after the rebuild", tx.Reference)
		}
	}

	// With the lookback, recent final payouts are polled again too.
	f.redis.FlushAll(ctx)
	e2, _ := f.engine(func(c *Config) { c.RebuildLookback = 24 * time.Hour })
	res, err = e2.PollOnce(ctx)
	if err != nil || !res.Rebuilt || res.Claimed != 3 || res.Done != 3 {
		t.Fatalf("rebuild with lookback: %+v %v", res, err)
	}
	checkMonotonic(t, f.statusEvents())
}

func TestBackoffGrowsWithAgeAndCaps(t *testing.T) {
	prev := time.Duration(0)
	for _, age := range []time.Duration{0, 2 * time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour, 72 * time.Hour} {
		d := backoff(age)
		if d < prev || d > 30*time.Minute {
			t.Fatalf("backoff(%v) = %v after %v", age, d, prev)
		}
		prev = d
	}
	if backoff(0) != 10*time.Second || backoff(48*time.Hour) != 30*time.Minute {
		t.Fatal("backoff bounds changed")
	}
}
