package dispatch

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Two faults: SmartFastPay paid a payee of ours, keeping its id in upper
// case, and Redis was lost before the hand-off; the recovery listed that
// form and marked our id suspect, keeping the form listed ({dispatch}:
// echoes). The rail's transaction_id filter matches the form it keeps
// exactly, so the group lookup (FindMany) by our id lists nothing. A
// payee whose form a recovery listed is left out of the group lookup and
// looks itself up under that form too (findPayee): the payout there
// proves nothing, and it waits. Looked up by the group, it was proven
// absent and posted again: paid twice (so it was when the group lookup
// was made for another payee of the batch, and its empty answer stood
// for the echoed payee's lookup too).
func TestEchoedPayeeIsLeftOutOfTheGroupLookup(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t) // SmartFastPay: a rail.ManyFinder
	f := newFixture(t, fixtureOpt{})
	e := r.engine(f, func(c *Config) { c.SingleConcurrency, c.RailPatience, c.LookupEveryPayee = 1, 2*time.Second, true })
	ctx := context.Background()
	b := singleBatch(r, "echo-group", 2) // the other payee makes the group's lookup
	rid := b.Transactions[0].RequestID
	form := strings.ToUpper(rid)
	// The payout paid before the loss, kept under the form the rail echoes.
	paid := b.Transactions[0]
	paid.RequestID = form
	if _, err := r.client.Create(ctx, singleRequest(r.name, &paid)); err != nil {
		t.Fatal(err)
	}
	// What the recovery wrote: our id suspect, the form it listed kept.
	rdb := e.st.rdb
	if err := rdb.Set(ctx, e.st.reqKey(rid), suspectMark, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, e.st.echoesKey(), rid, form).Err(); err != nil {
		t.Fatal(err)
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool { return outcome(e, "deferred")+outcome(e, "submitted") >= 1 })
	_ = stop()
	if n := r.sim.Accepted(rid) + r.sim.Accepted(form); n != 1 {
		t.Fatalf("%s paid %d times, want 1", rid, n)
	}
}
