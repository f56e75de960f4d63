package track

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Redis is flushed mid-run: old webhooks are replayed, a late PENDING
// arrives for a transaction already APPROVED, the rest settles, the poll
// rebuilds its schedule. No transition is lost, none regresses in the log,
// and a transition emitted before the flush keeps its eventId after it.
func TestRedisFlushLosesNothingAndKeepsEventIDs(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, sim: wompitest.Config{SettleDelay: time.Second, WebhookWorkers: 1}})
	e, _ := f.engine(nil)
	rec := &recorder{next: e.Handler()}
	hooks := httptest.NewServer(rec)
	t.Cleanup(hooks.Close)
	f.sim.SetWebhookURL(hooks.URL + WebhookPath)
	ctx := context.Background()
	secret := f.sim.Config().EventsSecret

	a := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("9991234567"))
	f.sim.Advance(2 * time.Second) // batch A settles; its webhooks are delivered
	f.waitHooks()
	b := f.submit(true, f.payee("1234567891"), f.payee("1234567892"))
	f.waitHooks()
	if _, err := e.PollOnce(ctx); err != nil { // B: PENDING from the poll
		t.Fatal(err)
	}
	before := f.statusEvents()
	beforeIDs := map[string]string{}
	for _, ev := range before {
		beforeIDs[ev.RequestID+"/"+string(ev.Status)] = ev.EventID
	}
	if len(before) != 5 {
		t.Fatalf("%d events before the flush, want 3 finals of A and 2 PENDING of B", len(before))
	}

	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}

	// Late PENDINGs for transactions Wompi already settled: Redis knows no
	// status now, so the tracker asks Wompi and emits no PENDING. For the
	// first the hand-off is gone too; for the second it is back (as if the
	// dispatcher recorded it again) and only the status is unknown.
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: a.payoutID, BatchID: a.batchID, OriginAccountID: wompitest.AccountMain,
		PaymentType: "PROVIDERS", SubmittedAt: t0}, []submitted.Transaction{{TransactionID: a.txs[1].ID, RequestID: a.txs[1].Reference,
		BatchID: a.batchID, PayoutID: a.payoutID, AmountInCents: a.txs[1].AmountInCents, OriginAccountID: wompitest.AccountMain}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := f.sub.Done(ctx, a.payoutID); err != nil {
		t.Fatal(err)
	}
	for _, tx := range a.txs[:2] {
		body, sum := txWebhook(t, secret, tx.ID, a.payoutID, tx.AmountInCents, "PENDING", nil, t0)
		if code := post(t, hooks.URL, body, sum); code != 200 {
			t.Fatalf("late PENDING after the flush: %d", code)
		}
	}
	// Wompi redelivers (or someone replays) everything sent so far.
	for _, h := range rec.hooks() {
		post(t, hooks.URL, h.body, h.sum)
	}
	// B settles; its webhooks arrive; the poll rebuilds and sweeps.
	f.sim.Advance(2 * time.Second)
	f.waitHooks()
	f.clock.Advance(time.Minute)
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt {
		t.Fatalf("poll after the flush: %+v %v", res, err)
	}

	after := f.statusEvents()
	checkMonotonic(t, after) // deterministic ids, one id per transition, no regression in the log
	byKey := transitions(after)
	for k, id := range beforeIDs {
		for _, ev := range byKey[k] {
			if ev.EventID != id {
				t.Errorf("%s: new eventId %s after the flush, was %s", k, ev.EventID, id)
			}
		}
	}
	want := map[string]payout.Status{}
	for _, c := range []created{a, b} {
		for tx, err := range f.wompi.PayoutTransactions(ctx, c.payoutID, wompi.TransactionsFilter{}) {
			if err != nil {
				t.Fatal(err)
			}
			st, _ := wompi.TransactionStatus(tx.Status).PayoutStatus()
			want[tx.Reference] = st
		}
	}
	for ref, st := range want {
		if !st.Final() {
			t.Fatalf("%s not final at Wompi", ref)
		}
		if len(byKey[ref+"/"+string(st)]) == 0 {
			t.Errorf("%s: final status %s lost", ref, st)
		}
	}
	for _, tx := range a.txs[:2] {
		if len(byKey[tx.Reference+"/PENDING"]) != 0 {
			t.Errorf("%s: PENDING emitted after the flush for a transaction Wompi had already settled", tx.Reference)
		}
	}
	// Every eventId after the flush is one of the transitions that exist.
	distinct := map[string]bool{}
	for _, ev := range after {
		distinct[ev.EventID] = true
	}
	if len(distinct) != 5+2 { // A: 3 finals; B: 2 PENDING + 2 finals
		t.Errorf("%d distinct eventIds, want 7", len(distinct))
	}
}

// A batch webhook's status read again from Wompi after a Redis loss: a
// late AFE_ON_HOLD (genuine, older) for a batch Wompi holds PENDING, with
// PENDING already on the topic. The two share a rank, so neither may follow
// the other, and the tracker kept the webhook's AFE_ON_HOLD, now verified,
// and emitted it after the PENDING. It now takes Wompi's status
// (payout.BatchBeyond): PENDING again, under its first eventId.
func TestLateBatchStatusOfTheSameRankAfterRedisLossTakesWompis(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	_, srv := f.engine(nil)
	secret := f.sim.Config().EventsSecret
	ctx := context.Background()
	c := f.submit(true, f.payee("1234567890"))
	tx := c.txs[0]
	if p, err := f.wompi.Payout(ctx, c.payoutID); err != nil || p.Status != wompi.BatchPending {
		t.Fatalf("Wompi's batch %+v %v, want PENDING", p, err)
	}
	send := func(st string) {
		body, sum := payoutWebhook(t, secret, c.payoutID, c.batchID, tx.AmountInCents, st, t0)
		if code := post(t, srv.URL, body, sum); code != 200 {
			t.Fatalf("batch %s: %d", st, code)
		}
	}
	send("PENDING")
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	// The dispatcher's hand-off is back (recorded again); the status is not.
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: c.payoutID, BatchID: c.batchID, OriginAccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypeProviders, TotalAmountInCents: tx.AmountInCents, TransactionCount: 1, SubmittedAt: t0},
		[]submitted.Transaction{{TransactionID: tx.ID, RequestID: tx.Reference, BatchID: c.batchID, PayoutID: c.payoutID,
			AmountInCents: tx.AmountInCents, OriginAccountID: wompitest.AccountMain}}, t0); err != nil {
		t.Fatal(err)
	}
	send("AFE_ON_HOLD")
	bevs := f.batchEvents()
	var got []payout.BatchStatus
	ids := map[payout.BatchStatus]map[string]bool{}
	for _, ev := range bevs {
		got = append(got, ev.Status)
		if ids[ev.Status] == nil {
			ids[ev.Status] = map[string]bool{}
		}
		ids[ev.Status][ev.EventID] = true
	}
	if len(got) == 0 || got[len(got)-1] != payout.BatchPending || len(ids[payout.BatchAFEOnHold]) != 0 {
		t.Fatalf("batch statuses %v, want PENDING last and no AFE_ON_HOLD", got)
	}
	if len(ids[payout.BatchPending]) != 1 {
		t.Fatalf("PENDING under %d eventIds, want its first", len(ids[payout.BatchPending]))
	}
}
