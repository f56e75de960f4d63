package dispatch

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
)

// listedWithoutID passes a single-payout rail's calls through, but
// answers the first lookup by our id made after a create with the
// provider's listing stripped of each payout's own id: the entry names
// our id (transaction_id, invoice) and not the provider's.
type listedWithoutID struct {
	name            rail.Name
	posts, stripped atomic.Int32
}

func (l *listedWithoutID) RoundTrip(req *http.Request) (*http.Response, error) {
	lookup, create := singleCall(l.name, req)
	if create {
		l.posts.Add(1)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !lookup || l.posts.Load() == 0 || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	_, err = railtest.RewriteBody(resp, func(body []byte) ([]byte, bool) {
		if l.stripped.Load() > 0 {
			return body, false
		}
		out, ok := railtest.StripListedIDs(body, nil)
		if ok {
			l.stripped.Add(1)
		}
		return out, ok
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Two faults on a single-payout rail: a create is applied and its answer
// lost (outcome unknown), and the lookup after the grace lists the payout
// under our id without the provider's own id. Adopted as it was, the
// payee's SUBMITTED named no payout and its hand-off was recorded as
// "<rail>:", which the tracker cannot read as a single payout (it polls it
// as a Wompi payout, for ever): the provider's payout was followed by
// nothing, and with its webhooks lost the payee stayed SUBMITTED. A payout
// found without its provider's id proves only that the payee was posted:
// it is neither adopted nor posted again, and the payee is looked up again.
func TestAPayoutListedWithoutItsProviderIDIsNotAdopted(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "adopt-noid", 1)
		rid := b.Transactions[0].RequestID
		tr := &listedWithoutID{name: r.name}
		r = r.through(t, tr)
		r.sim.DropNextCreateResponse()
		e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") >= 1 })
		_ = stop()
		if tr.stripped.Load() == 0 {
			t.Fatal("the fault was not met: no lookup listed the payout")
		}
		for _, s := range byStatus(f.statuses())[rid][payout.StatusSubmitted] {
			if s.TransactionID == nil || *s.TransactionID == "" {
				t.Fatalf("SUBMITTED %+v names no provider payout: nothing can follow it", s)
			}
		}
		f.checkSinglePaid(r, b, nil)
	})
}

// idlessBatches answers the first lookups by reference that find a batch
// (left counts them down) with every batch's Wompi id left out.
type idlessBatches struct {
	rail.BatchRail
	left atomic.Int32
}

func (r *idlessBatches) FindBatches(ctx context.Context, reference string) ([]rail.Batch, error) {
	bs, err := r.BatchRail.FindBatches(ctx, reference)
	if err == nil && len(bs) > 0 && r.left.Add(-1) >= 0 {
		for i := range bs {
			bs[i].ProviderID = ""
		}
	}
	return bs, err
}

// The same on Wompi, with two faults: Redis lost the record of a batch
// Wompi holds and has forgotten the idempotency key of, and the lookup by
// reference lists the batch without its id. Read as absent (no id to
// pick), the batch was posted again under a new key: paid twice. A batch
// listed without its id is a failed lookup, asked again until it shows
// with its id.
func TestABatchListedWithoutItsIDIsNotReadAsAbsent(t *testing.T) {
	t.Parallel()
	f, b := heldAndForgotten(t, "idless")
	e := f.engine(func(c *Config) { c.RailPatience = 30 * time.Second })
	idless := &idlessBatches{BatchRail: e.batchRail}
	idless.left.Store(2)
	e.batchRail = idless
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the batch handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") >= 1 })
	_ = stop()
	if idless.left.Load() > 0 {
		t.Fatalf("the fault was not met: %d id-less lookups left", idless.left.Load())
	}
	f.noDoublePayment()
	if n := f.sim.BatchLedger()[b.BatchID].Accepted; n != 1 {
		t.Fatalf("Wompi holds %d payouts for the batch, want 1", n)
	}
}
