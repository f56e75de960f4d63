package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// wepNewestFirst serves WEpayout's full listing (no external_id) newest
// first, its page 2 once from a replica behind (newestFirstLag).
type wepNewestFirst struct{ newestFirstLag }

func (s *wepNewestFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/v2/payout/payments") || q.Get("external_id") != "" {
		return http.DefaultTransport.RoundTrip(req)
	}
	page, _ := strconv.Atoi(q.Get("page"))
	per, _ := strconv.Atoi(q.Get("per_page"))
	page, per = max(page, 1), max(per, 1)
	var full struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := fetchWhole(req, map[string]string{"page": "1", "per_page": strconv.Itoa(wepayout.MaxPerPage)}, &full); err != nil {
		return nil, err
	}
	data := s.records(full.Data, page)
	total := len(data)
	last := max(1, (total+per-1)/per)
	lo, hi := min((page-1)*per, total), min(page*per, total)
	out, err := json.Marshal(map[string]any{
		"data": append([]json.RawMessage{}, data[lo:hi]...),
		"meta": map[string]int{"current_page": page, "last_page": last, "per_page": per, "total": total},
	})
	if err != nil {
		return nil, err
	}
	return jsonAnswer(req, http.StatusOK, string(out)), nil
}

// Two faults together on WEpayout: a payee is paid and the dispatcher
// crashes before recording it, then Redis is lost; the recovery's listing
// (newest first, two payments a page) has one page answered by a replica
// one payment behind, the others by up-to-date replicas, and the paid
// payee is on no page the walk read (see
// TestWompiNewestFirstListingWithAPageBehindIsNoProof: page 2 behind
// announces one payment fewer, page 1 behind one fewer than the later
// pages). The walk took the page: the paid payee was never indexed, the
// epoch was marked complete, and the batch read again proved the payee
// new and posted it without a lookup: paid twice.
func TestWEpayoutNewestFirstListingWithAPageBehindIsNoProof(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		behind, older, newer int // the page behind; payments older and newer than the payee's
	}{
		{"Page2Behind", 2, 3, 2}, // as many pages without the newest
		{"Page1Behind", 1, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var on atomic.Bool
			tr := &wepNewestFirst{newestFirstLag{on: &on, behind: tc.behind}}
			label := "desc-lag-" + strings.ToLower(tc.name)
			f := newFixture(t, fixtureOpt{ownRedis: true})
			sim := weptest.NewTestServer(t, weptest.Config{})
			r := singleRails(t)[1](t)
			r.client = sim.Client(wepayout.Config{NotificationURL: sink(t), PageSize: 2,
				HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tr}})
			r.sim = sim
			create := func(name string) {
				t.Helper()
				other := singleBatch(r, name, 1)
				if _, err := r.client.Create(context.Background(), singleRequest(r.name, &other.Transactions[0])); err != nil {
					t.Fatal(err)
				}
			}
			for i := range tc.older {
				create(fmt.Sprintf("%s-older-%d", label, i))
			}
			b := singleBatch(r, label, 1)
			untilCrash(t, f, r.engine(f, nil), b)
			for i := range tc.newer { // paid just before the loss
				create(fmt.Sprintf("%s-newer-%d", label, i))
			}
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
				t.Fatal("the recovery never read the page behind")
			}
			if n := sim.Accepted(b.Transactions[0].RequestID); n != 1 {
				t.Fatalf("%s paid %d times, want 1", b.Transactions[0].RequestID, n)
			}
		})
	}
}
