package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// blankLookups answers the first n GETs of WEpayout's listing filtered by
// external_id with a 200 that carries no data array (a gateway's
// {"message": ...}); everything else reaches the simulator.
type blankLookups struct{ left, served atomic.Int32 }

func (b *blankLookups) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Get("external_id") != "" && b.left.Add(-1) >= 0 {
		b.served.Add(1)
		return jsonAnswer(req, http.StatusOK, `{"message":"Service temporarily unavailable"}`), nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults together on WEpayout: a create is applied but its answer is
// lost (outcome unknown), and the lookup after the grace is answered 200
// without a data array. Read as an empty listing, it proved the payee
// absent and the POST was repeated: paid twice.
func TestWEpayoutLookupWithoutDataIsNoProofOfAbsence(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	tr := &blankLookups{}
	tr.left.Store(1)
	r = r.through(t, tr)
	f := newFixture(t, fixtureOpt{})
	b := singleBatch(r, "blank-lookup", 1)
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	r.sim.DropNextCreateResponse() // applied, answer lost: outcome unknown
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if tr.served.Load() != 1 {
		t.Fatal("the blank lookup was never asked for")
	}
	f.checkSinglePaid(r, b, nil)
}

// emptyPageOnce answers, once on is set, the first read of page 2 of
// WEpayout's full listing (no external_id) with an empty page whose meta
// still announces it: a page the server failed to fill (a replica behind).
type emptyPageOnce struct {
	on     *atomic.Bool
	served atomic.Int32
}

func (s *emptyPageOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if s.on.Load() && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/v2/payout/payments") &&
		q.Get("external_id") == "" && q.Get("page") == "2" && s.served.Add(1) == 1 {
		return jsonAnswer(req, http.StatusOK, `{"data":[],"meta":{"current_page":2,"last_page":2,"per_page":1,"total":2}}`), nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults together on WEpayout: a payee is paid and the dispatcher
// crashes before recording it, then Redis is lost; the recovery's listing
// of the rail (one payment a page here) is answered with its page 2 empty
// once, its meta still announcing it. The walk took that page for the end:
// the paid payee was never indexed, the epoch was marked complete, and the
// batch read again proved the payee new and posted it without a lookup:
// paid twice.
func TestWEpayoutListingWithAnEmptyPageIsNoProof(t *testing.T) {
	t.Parallel()
	var on atomic.Bool
	tr := &emptyPageOnce{on: &on}
	paidOnceThroughAFaultyPage(t, tr, &on, &tr.served, "empty-page", 1)
}

// paidOnceThroughAFaultyPage runs the two faults of the WEpayout listing
// tests: others payees paid earlier (pages 1 to others of a listing of one
// payment a page), then a payee paid by a dispatcher that crashes before
// recording it, then Redis lost; tr, switched on through on, spoils a page
// of the recovery's listing and counts it in served. The payee must be
// paid once.
func paidOnceThroughAFaultyPage(t *testing.T, tr http.RoundTripper, on *atomic.Bool, served *atomic.Int32, label string, others int) {
	t.Helper()
	f := newFixture(t, fixtureOpt{ownRedis: true})
	sim := weptest.NewTestServer(t, weptest.Config{})
	r := singleRails(t)[1](t)
	r.client = sim.Client(wepayout.Config{NotificationURL: sink(t), PageSize: 1,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tr}})
	r.sim = sim
	for i := range others {
		other := singleBatch(r, fmt.Sprintf("%s-other-%d", label, i), 1)
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &other.Transactions[0])); err != nil {
			t.Fatal(err)
		}
	}
	b := singleBatch(r, label, 1)
	untilCrash(t, f, r.engine(f, nil), b)
	on.Store(true)
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := r.engine(f, func(c *Config) { c.RailPatience = 2 * time.Second })
	stop, _ := f.run(e)
	eventually(t, "the batch read again handled", func() bool {
		return outcome(e, "submitted")+outcome(e, "deferred") >= 1
	})
	_ = stop()
	if served.Load() == 0 {
		t.Fatal("the recovery never read the spoiled page of the listing")
	}
	if n := sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s paid %d times, want 1", b.Transactions[0].RequestID, n)
	}
}
