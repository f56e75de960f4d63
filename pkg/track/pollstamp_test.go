package track

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// batchStatusRail is the Wompi rail, with GetBatch's status replaced by
// status while it is set: a batch whose status and transactions disagree
// for a while.
type batchStatusRail struct {
	*simRail
	status atomic.Pointer[payout.BatchStatus]
}

// simRail names wompi.Rail for embedding (its field would be named Rail,
// as is one of its methods).
type simRail = wompi.Rail

func (r *batchStatusRail) GetBatch(ctx context.Context, id string) (rail.Batch, error) {
	b, err := r.simRail.GetBatch(ctx, id)
	if st := r.status.Load(); st != nil && err == nil {
		b.Status = *st
	}
	return b, err
}

// A poll that skips decoding unchanged pages takes their finality from the
// last complete poll: a payout ends only once its batch and every one of
// its transactions are final, however the two come in.
func TestUnchangedPagesKeepTheirFinality(t *testing.T) {
	for _, c := range []struct {
		name    string
		settle  bool               // the transactions are final
		forced  payout.BatchStatus // GetBatch's status for the first two polls
		wantEnd [3]bool            // the three polls end the payout
	}{
		// Pending transactions in a batch said final: never ended, even
		// when the pages are not decoded.
		{"pending transactions", false, payout.BatchTotalPayment, [3]bool{false, false, false}},
		// Final transactions in a batch said pending: ended once the batch
		// is final, by a poll that does not decode them.
		{"final transactions", true, payout.BatchPending, [3]bool{false, false, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{pageSize: 2, sim: wompitest.Config{Faults: wompitest.Faults{WebhookDropRate: 1}}})
			r := &batchStatusRail{simRail: f.rail(f.wompi, f.sim.Config().EventsSecret)}
			e, srv := f.engine(func(cfg *Config) { cfg.Wompi = r })
			f.sim.SetWebhookURL(srv.URL + WebhookPath)
			ctx := context.Background()
			f.submit(true, f.payee("1234567890"), f.payee("1234567891"), f.payee("1234567892"))
			if c.settle {
				f.sim.SettleAll()
				f.waitHooks()
			}
			r.status.Store(&c.forced)
			for i, end := range c.wantEnd {
				if i == 2 {
					r.status.Store(nil)
				}
				res, err := e.PollOnce(ctx)
				if err != nil || res.Claimed != 1 || (res.Done == 1) != end {
					t.Fatalf("poll %d: %+v %v, want ended=%v", i+1, res, err, end)
				}
				f.clock.Advance(backoff(0))
			}
			if got := testutil.ToFloat64(e.m.pollsUnchanged); got != 2 {
				t.Fatalf("unchanged polls %v, want 2 (the second and third)", got)
			}
		})
	}
}
