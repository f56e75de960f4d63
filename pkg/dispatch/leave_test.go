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

// A SUBMITTED whose produce ended with the client's close may have been
// sent: its key stays held for the gate's lease, so the tracker cannot put
// APPROVED on the topic before it lands. Abandoning it (End(false)) would
// free the key at once.
func TestClosedClientLeavesGatedKeysHeld(t *testing.T) {
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	since, err := e.gate.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{e: e, log: testLogger(), soft: ctx, hard: ctx, statusSince: since}
	e.Close()
	rec := &kgo.Record{Topic: f.topics.Status, Key: []byte("req-closed"), Value: []byte("x")}
	// The first record fails for another reason (no topic): the close of
	// the second must still be seen.
	other := &kgo.Record{Key: []byte("other"), Value: []byte("x")}
	err = j.produceGated([]*kgo.Record{rec}, []track.GateItem{{ID: "req-closed", To: string(payout.StatusSubmitted), Ref: "tx-closed"}},
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
