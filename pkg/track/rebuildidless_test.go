package track

import (
	"context"
	"iter"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// hiddenIDs is our ids (a Wompi batch's reference, a single payout's
// requestId) whose payouts the providers list without their own id. As a
// transport it strips the single-payout rails' listings; idlessWompi reads
// it for Wompi's.
type hiddenIDs struct {
	mu  sync.Mutex
	ids []string
}

func (h *hiddenIDs) set(ids ...string) {
	h.mu.Lock()
	h.ids = ids
	h.mu.Unlock()
}

func (h *hiddenIDs) has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.ids, id)
}

func (h *hiddenIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	h.mu.Lock()
	ids := slices.Clone(h.ids)
	h.mu.Unlock()
	if _, err := railtest.RewriteBody(resp, func(b []byte) ([]byte, bool) { return railtest.StripListedIDs(b, railtest.NamesAny(ids...)) }); err != nil {
		return nil, err
	}
	return resp, nil
}

// idlessWompi lists the batches whose reference hidden holds without
// Wompi's id.
type idlessWompi struct {
	*innerWompi
	hidden *hiddenIDs
}

func (r *idlessWompi) BatchesByStatus(ctx context.Context, since time.Time, statuses ...payout.BatchStatus) iter.Seq2[rail.Batch, error] {
	inner := r.innerWompi.BatchesByStatus(ctx, since, statuses...)
	return func(yield func(rail.Batch, error) bool) {
		for b, err := range inner {
			if err == nil && r.hidden.has(b.Reference) {
				b.ProviderID = ""
			}
			if !yield(b, err) {
				return
			}
		}
	}
}

// Redis lost everything while a Wompi payout and a payout of each
// single-payout rail were pending, and the rails list each of them without
// the provider's own id. The rebuild put them on the schedule under the id
// "" and "<rail>:", which no poll can read: each was polled as a Wompi
// payout (GET /payouts/ of nothing, or of "smartfastpay:") at the longest
// backoff, for ever, and an operator saw only "unknown to Wompi". They are
// left off the schedule, counted by rail and logged with our id; the
// payout listed with its id is scheduled as before.
func TestRebuildLeavesPayoutsListedWithoutTheirIDOffTheSchedule(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, sim: wompitest.Config{SettleDelay: time.Hour,
		Faults: wompitest.Faults{WebhookDropRate: 1}}})
	s := newSingles(t)
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	hidden := &hiddenIDs{}
	e, srv := f.singleEngine(s, func(c *Config) {
		hc := &http.Client{Transport: hidden, Timeout: 10 * time.Second}
		c.SmartFastPay = s.sfp.Client(func(sc *smartfastpay.Config) { sc.HTTPClient = hc })
		c.WEpayout = s.wep.Client(wepayout.Config{HTTPClient: hc})
		c.Wompi = &idlessWompi{innerWompi: c.Wompi.(*wompi.Rail), hidden: hidden}
	})
	listed := f.submit(true, f.payee("1234567890"))
	ghost := f.submit(true, f.payee("1234567891"))
	wp, sp := f.wepPayout(srv.URL, "98"), f.sfpPayout(srv.URL, "98")
	f.handOff(s.wepc, wp)
	f.handOff(s.sfpc, sp)
	hidden.set(ghost.batchID, wp.ID, sp.ID)
	ctx := context.Background()
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt || res.Claimed != 1 {
		t.Fatalf("poll after the loss: %+v %v, want only %s (listed with its id) claimed", res, err, listed.payoutID)
	}
	for _, name := range rail.Names {
		if n := testutil.ToFloat64(e.m.rebuildIDless.WithLabelValues(string(name))); n < 1 {
			t.Errorf("%s: %v payouts counted listed without their id, want at least 1", name, n)
		}
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n > 1 {
		t.Fatalf("scheduled after the rebuild: %d %v, want at most the payout listed with its id", n, err)
	}
}
