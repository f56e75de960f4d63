package dispatch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// gatedJob is a job of a fresh engine, ready for produceGated.
func gatedJob(t *testing.T) (*fixture, *Engine, *job) {
	t.Helper()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	since, err := e.gate.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f, e, &job{e: e, log: testLogger(), soft: ctx, hard: ctx, statusSince: since}
}

// A SUBMITTED whose produce ended with the client's close may have been
// sent: its key stays held for the gate's lease, so the tracker cannot put
// APPROVED on the topic before it lands. Abandoning it (End(false)) would
// free the key at once.
func TestClosedClientLeavesGatedKeysHeld(t *testing.T) {
	t.Parallel()
	f, e, j := gatedJob(t)
	ctx, since := j.hard, j.statusSince
	e.Close()
	rec := &kgo.Record{Topic: f.topics.Status, Key: []byte("req-closed"), Value: []byte("x")}
	// The first record fails for another reason (no topic): the close of
	// the second must still be seen.
	other := &kgo.Record{Key: []byte("other"), Value: []byte("x")}
	err := j.produceGated([]*kgo.Record{rec}, []track.GateItem{{ID: "req-closed", To: string(payout.StatusSubmitted), Ref: "tx-closed"}},
		[]*kgo.Record{other})
	if !errors.Is(err, kgo.ErrClientClosed) {
		t.Fatalf("produce on a closed client: %v", err)
	}
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	tracker.SetLossGrace(-1)
	tk, err := tracker.Begin(ctx, since, []track.GateItem{{ID: "req-closed", To: string(payout.StatusApproved), Ref: "tx-closed"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tracker.End(ctx, tk, false) }()
	if tk.Verdicts[0] != track.GateBusy {
		t.Fatalf("APPROVED after the dispatcher's produce ended with the client's close: verdict %v, want busy (key held)", tk.Verdicts[0])
	}
}

// A produce in which some SUBMITTED records were written and others failed
// confirms the written ones and abandons only the failed ones: an
// abandoned status means one known not to be on the topic (franz-go fails
// a record only then), which the status gate relies on after a Redis loss.
func TestPartlyFailedProduceConfirmsWhatWasWritten(t *testing.T) {
	t.Parallel()
	f, _, j := gatedJob(t)
	ctx, since := j.hard, j.statusSince
	written := &kgo.Record{Topic: f.topics.Status, Key: []byte("req-written"), Value: []byte("x")}
	failed := &kgo.Record{Key: []byte("req-failed"), Value: []byte("x")} // no topic: fails at once
	items := []track.GateItem{
		{ID: "req-written", To: string(payout.StatusSubmitted), Ref: "tx-w"},
		{ID: "req-failed", To: string(payout.StatusSubmitted), Ref: "tx-f"},
	}
	if err := j.produceGated([]*kgo.Record{written, failed}, items, nil); err == nil {
		t.Fatal("a produce with a failed record succeeded")
	}
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	tracker.SetLossGrace(-1)
	tk, err := tracker.Begin(ctx, since, []track.GateItem{
		{ID: "req-written", To: string(payout.StatusPending), Ref: "tx-w"},
		{ID: "req-failed", To: string(payout.StatusPending), Ref: "tx-f"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tracker.End(ctx, tk, false) }()
	if tk.Verdicts[0] != track.GateOurs || tk.Previous[0] != string(payout.StatusSubmitted) {
		t.Errorf("PENDING after a written SUBMITTED: verdict %v, previous %q, want ours after SUBMITTED", tk.Verdicts[0], tk.Previous[0])
	}
	if tk.Verdicts[1] != track.GateOurs || tk.Previous[1] != "" {
		t.Errorf("PENDING after a failed SUBMITTED: verdict %v, previous %q, want ours after nothing", tk.Verdicts[1], tk.Previous[1])
	}
}
