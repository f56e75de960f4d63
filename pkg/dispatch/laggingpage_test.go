package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// laggingPageOnce answers, once on is set, the first read of page 2 of
// WEpayout's full listing (no external_id) with the page's real payments
// but a meta that announces page 2 as the last: a replica behind by one
// payment answered it (it holds two payments, one a page).
type laggingPageOnce struct {
	on     *atomic.Bool
	served atomic.Int32
}

func (s *laggingPageOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !s.on.Load() || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/v2/payout/payments") ||
		q.Get("external_id") != "" || q.Get("page") != "2" || s.served.Add(1) != 1 {
		return resp, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var pg map[string]any
	if err := json.Unmarshal(raw, &pg); err != nil {
		return nil, err
	}
	pg["meta"] = map[string]int{"current_page": 2, "last_page": 2, "per_page": 1, "total": 2}
	out, _ := json.Marshal(pg)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(out)), int64(len(out))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// Two faults together on WEpayout, as in
// TestWEpayoutListingWithAnEmptyPageIsNoProof, but the lagging page is not
// empty: a payee is paid and the dispatcher crashes before recording it,
// then Redis is lost; the recovery's listing (one payment a page, the
// paid payee on page 3) has its page 2 answered by a replica one payment
// behind, whose meta announces page 2 as the last. The walk stopped there:
// the paid payee was never indexed, the epoch was marked complete, and the
// batch read again proved the payee new and posted it without a lookup:
// paid twice.
func TestWEpayoutListingWithALaggingLastPageIsNoProof(t *testing.T) {
	f := newFixture(t, fixtureOpt{ownRedis: true})
	sim := weptest.NewTestServer(t, weptest.Config{})
	var on atomic.Bool
	tr := &laggingPageOnce{on: &on}
	r := singleRails(t)[1](t)
	r.client = sim.Client(wepayout.Config{NotificationURL: sink(t), PageSize: 1,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tr}})
	r.sim = sim
	// Two other payees paid earlier: pages 1 and 2 of the listing.
	for _, p := range []string{"lag-other-a", "lag-other-b"} {
		other := singleBatch(r, p, 1)
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &other.Transactions[0])); err != nil {
			t.Fatal(err)
		}
	}
	b := singleBatch(r, "lag-page", 1)
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
	if tr.served.Load() == 0 {
		t.Fatal("the recovery never read page 2 of the listing")
	}
	if n := sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s paid %d times, want 1", b.Transactions[0].RequestID, n)
	}
}
