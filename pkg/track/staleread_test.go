package track

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func mustEpoch(t testing.TB, s *statusStore) string {
	t.Helper()
	ep, err := s.epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// Two faults together: a poll reads PENDING from the provider; before it
// emits, a webhook's APPROVED is emitted and confirmed, and then Redis loses
// its data. The poll's PENDING finds an empty key. Emitting it would put
// PENDING after APPROVED on the status topic (seen in the chaos suite on a
// real broker): the epoch marker taken before the read refuses it, and a
// status read after the loss is emitted.
func TestStatusReadBeforeRedisLossIsNotEmitted(t *testing.T) {
	rs := testenv.RedisOwn(t)
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ctx := context.Background()

	since := mustEpoch(t, s) // the poll, before it reads Wompi
	approved := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusApproved), ref: "tx-1", final: true, verified: true}
	if out, _, err := s.begin(ctx, approved, "hook"); err != nil || out != outcomeOK {
		t.Fatalf("webhook's APPROVED: %s %v", out, err)
	}
	if err := s.end(ctx, approved, "hook", true); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	stale := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusPending), ref: "tx-1", verified: true, since: since}
	if out, _, err := s.begin(ctx, stale, "poll"); err != nil || out != outcomeReread {
		t.Fatalf("the poll's PENDING read before the loss: %s %v, want %s", out, err, outcomeReread)
	}
	// The same through the pipelined path, and for a batch.
	staleBatch := transition{kind: kindBatch, id: "b-1", to: string(payout.BatchPending), ref: "p-1", verified: true, since: since}
	outs, _, err := s.beginMany(ctx, []transition{stale, staleBatch}, []string{"poll-2", "poll-3"})
	if err != nil || outs[0] != outcomeReread || outs[1] != outcomeReread {
		t.Fatalf("pipelined: %v %v, want both %s", outs, err, outcomeReread)
	}
	// Released: the key reads as empty, not as an attempt in flight.
	if n, err := rs.Client().Exists(ctx, s.key(kindRequest, "r-1"), s.key(kindBatch, "b-1")).Result(); err != nil || n != 0 {
		t.Fatalf("released attempts left %d keys (%v)", n, err)
	}
	// A final status needs no check; a status read after the loss (a new
	// epoch taken first) is emitted.
	if out, _, err := s.begin(ctx, transition{kind: kindRequest, id: "r-2", to: string(payout.StatusFailed), ref: "tx-2",
		final: true, verified: true, since: since}, "f"); err != nil || out != outcomeOK {
		t.Fatalf("final status after the loss: %s %v", out, err)
	}
	fresh := mustEpoch(t, s)
	if fresh == since {
		t.Fatal("the epoch marker survived FLUSHALL")
	}
	stale.since = fresh
	if out, _, err := s.begin(ctx, stale, "poll-4"); err != nil || out != outcomeOK {
		t.Fatalf("PENDING read after the loss: %s %v, want ok", out, err)
	}
}

// The same pair of faults through the dispatcher's gate: SUBMITTED checked
// against the marker the dispatcher took before its POST is skipped.
func TestGateSkipsStatusesObservedBeforeRedisLoss(t *testing.T) {
	rs := testenv.RedisOwn(t)
	g := NewGate(rs.Client(), rs.Prefix(), time.Minute)
	ctx := context.Background()
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-1", To: string(payout.StatusApproved), Ref: "tx-1"}})
	if err != nil || tk.Verdicts[0] != GateOurs {
		t.Fatalf("APPROVED: %+v %v", tk, err)
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	tk, err = g.Begin(ctx, since, []GateItem{{ID: "r-1", To: string(payout.StatusSubmitted), Ref: "tx-1"},
		{Batch: true, ID: "b-1", To: string(payout.BatchPending), Ref: "p-1"}})
	if err != nil || tk.Verdicts[0] != GateSkip || tk.Verdicts[1] != GateSkip {
		t.Fatalf("SUBMITTED and batch PENDING after the loss: %+v %v, want both skipped", tk, err)
	}
	fresh, err := g.Epoch(ctx)
	if err != nil || fresh == since {
		t.Fatalf("epoch after the loss: %q %v", fresh, err)
	}
	tk, err = g.Begin(ctx, fresh, []GateItem{{ID: "r-9", To: string(payout.StatusSubmitted), Ref: "tx-9"}})
	if err != nil || tk.Verdicts[0] != GateOurs {
		t.Fatalf("SUBMITTED observed after the loss: %+v %v", tk, err)
	}
}

// hookTransport runs after once the first answer to a request whose path
// ends in suffix was read, before the caller sees it.
type hookTransport struct {
	suffix string
	after  func()
	done   atomic.Bool
}

func (h *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, h.suffix) || !h.done.CompareAndSwap(false, true) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	h.after()
	return resp, nil
}

// The pair of faults end to end, as the chaos suite met it on a real
// broker: a poll lists a payout's transactions (PENDING); before it emits,
// Wompi settles one, its APPROVED is emitted (as a webhook would), and Redis
// is flushed. The poll must not emit its PENDING after that APPROVED; the
// next poll, reading after the loss, finds APPROVED.
func TestPollReadBeforeRedisLossDoesNotRegress(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, sim: wompitest.Config{SettleDelay: time.Second}})
	e := pollReadBeforeALoss(t, f, "the loss", func(emitApproved func()) {
		emitApproved()
		if err := f.redis.FlushAll(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if n := testutil.ToFloat64(e.m.rereads.WithLabelValues(string(kindRequest))); n != 1 {
		t.Fatalf("stale reads counted %v, want 1", n)
	}
}

// Two faults together (seen in the chaos suite): a SmartFastPay payout is
// paid, its success callback is lost, and it is refunded before a poll saw
// it paid. The tracker knows PENDING and reads RETURNED: RETURNED follows
// APPROVED only, so refusing it would leave the request at PENDING for
// good. The APPROVED it implies is emitted first, then the RETURNED.
func TestReturnedWithoutApprovedKnownEmitsTheApprovedFirst(t *testing.T) {
	f, e, ref, since := pendingSmartFastPay(t, "req-returned", "900001")
	ctx := context.Background()
	returned := singleChange(rail.SmartFastPay, "900001", ref, payout.StatusReturned, "", f.clock.Now(), payout.SourcePoll)
	if res, err := e.emitRequest(ctx, returned, true, since, nil); err != nil || res != emitNew {
		t.Fatalf("RETURNED: %v %v", res, err)
	}
	evs := f.statusEvents()
	var got []payout.Status
	for _, ev := range evs {
		got = append(got, ev.Status)
	}
	if len(got) != 3 || got[1] != payout.StatusApproved || got[2] != payout.StatusReturned || evs[1].AmountInCents != ref.amount {
		t.Fatalf("events %v, want PENDING APPROVED RETURNED", got)
	}
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Fatal(err)
	}
	// A FAILED payout is not turned into a paid one.
	failedRef := singleRef{requestID: "req-failed", batchID: "batch-r", amount: 1, originAccountID: "acc-1"}
	failed := singleChange(rail.SmartFastPay, "900002", failedRef, payout.StatusFailed, "", f.clock.Now(), payout.SourceWebhook)
	if _, err := e.emitRequest(ctx, failed, true, since, nil); err != nil {
		t.Fatal(err)
	}
	late := singleChange(rail.SmartFastPay, "900002", failedRef, payout.StatusReturned, "", f.clock.Now(), payout.SourcePoll)
	if res, err := e.emitRequest(ctx, late, true, since, nil); err != nil || res != emitRegression {
		t.Fatalf("RETURNED after FAILED: %v %v, want it refused", res, err)
	}
	if n := len(f.statusEvents()); n != 4 {
		t.Fatalf("%d events, want 4: nothing after FAILED", n)
	}
	// A RETURNED for a request the tracker knows nothing of (its refund
	// callback came first; the success one was lost): APPROVED first.
	fresh := singleRef{requestID: "req-returned-first", batchID: "batch-r", amount: 7, originAccountID: "acc-1"}
	first := singleChange(rail.SmartFastPay, "900003", fresh, payout.StatusReturned, "", f.clock.Now(), payout.SourceWebhook)
	if res, err := e.emitRequest(ctx, first, false, since, nil); err != nil || res != emitNew {
		t.Fatalf("RETURNED on an empty key: %v %v", res, err)
	}
	if got := statusesOf(f.statusEvents(), fresh.requestID); fmt.Sprint(got) != "[APPROVED RETURNED]" {
		t.Fatalf("RETURNED on an empty key: %v, want APPROVED RETURNED", got)
	}
}

// Two emitters together (seen in the chaos suite): a poll reads a
// SmartFastPay payout refunded while the tracker knows PENDING, and the
// payout's late success callback emits APPROVED between the RETURNED's
// refusal and the APPROVED it implies. That APPROVED is then a duplicate,
// and the RETURNED must still follow it: refused, it would be lost for
// good, since the poll takes the payout off the schedule once it read a
// final status.
func TestReturnedFollowsAnApprovedEmittedMeanwhile(t *testing.T) {
	f, e, ref, since := pendingSmartFastPay(t, "req-race", "900010")
	ctx := context.Background()
	e.beforeImpliedApproved = func() {
		e.beforeImpliedApproved = nil
		late := singleChange(rail.SmartFastPay, "900010", ref, payout.StatusApproved, "", f.clock.Now(), payout.SourceWebhook)
		if res, err := e.emitRequest(ctx, late, true, since, nil); err != nil || res != emitNew {
			t.Errorf("the late callback's APPROVED: %v %v", res, err)
		}
	}
	returned := singleChange(rail.SmartFastPay, "900010", ref, payout.StatusReturned, "", f.clock.Now(), payout.SourcePoll)
	if res, err := e.emitRequest(ctx, returned, true, since, nil); err != nil || res != emitNew {
		t.Fatalf("RETURNED: %v %v, want it emitted after the APPROVED", res, err)
	}
	evs := f.statusEvents()
	if got := statusesOf(evs, ref.requestID); fmt.Sprint(got) != "[PENDING APPROVED RETURNED]" {
		t.Fatalf("events %v, want PENDING APPROVED RETURNED", got)
	}
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Fatal(err)
	}
}

// pendingSmartFastPay starts a tracker on a fixture and emits PENDING for
// SmartFastPay payout providerID of request requestID (250,000 cents); it
// returns the epoch marker the emission was made under.
func pendingSmartFastPay(t *testing.T, requestID, providerID string) (*fixture, *Engine, singleRef, string) {
	t.Helper()
	f := newFixture(t, fixtureOpts{})
	e, _ := f.engine(nil)
	ref := singleRef{requestID: requestID, batchID: "batch-r", amount: 250_000, originAccountID: "acc-1"}
	since := mustEpoch(t, e.statuses)
	pending := singleChange(rail.SmartFastPay, providerID, ref, payout.StatusPending, "", f.clock.Now(), payout.SourceWebhook)
	if res, err := e.emitRequest(context.Background(), pending, true, since, nil); err != nil || res != emitNew {
		t.Fatalf("PENDING: %v %v", res, err)
	}
	return f, e, ref, since
}

// pollReadBeforeALoss submits a Wompi payout and polls it. Once the poll
// has listed its transaction (PENDING), before it emits, Wompi settles the
// transaction and loss runs, given emitApproved, which emits the APPROVED
// as the webhook would: loss emits it and loses our Redis state around it
// (a flush after it, a failover before it and a failback after). The poll
// must not emit its PENDING after that APPROVED (what names the loss in
// the failure). It returns the poll's engine.
func pollReadBeforeALoss(t *testing.T, f *fixture, what string, loss func(emitApproved func())) *Engine {
	t.Helper()
	c := f.submit(true, f.payee("1234567890"))
	var e *Engine
	hook := &hookTransport{suffix: "/transactions", after: func() {
		f.sim.Advance(2 * time.Second) // Wompi approves the transaction
		tx, err := f.wompi.PayoutTransaction(context.Background(), c.payoutID, c.txs[0].ID)
		if err != nil || tx.Status != "APPROVED" {
			t.Errorf("transaction after settling: %+v %v", tx, err)
			return
		}
		loss(func() {
			sc := &payout.StatusChange{RequestID: tx.Reference, BatchID: payout.OptString(c.batchID), PayoutID: payout.OptString(c.payoutID),
				TransactionID: payout.OptString(tx.ID), Status: payout.StatusApproved, AmountInCents: tx.AmountInCents,
				OriginAccountID: wompitest.AccountMain, OccurredAt: f.clock.Now(), Source: payout.SourceWebhook, Rail: wompiRail()}
			if res, err := e.emitRequest(context.Background(), sc, false, "", nil); err != nil || res != emitNew {
				t.Errorf("webhook's APPROVED: %v %v", res, err)
			}
		})
	}}
	polled, err := wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, HTTPClient: &http.Client{Transport: hook}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ = f.engine(func(cfg *Config) { cfg.Wompi = f.rail(polled, f.sim.Config().EventsSecret) })
	if _, err := e.PollOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !hook.done.Load() {
		t.Fatal("the poll never listed the transactions")
	}
	evs := f.statusEvents()
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Status == payout.StatusPending {
			t.Fatalf("the poll emitted PENDING read before %s, after APPROVED: %+v", what, ev)
		}
	}
	return e
}
