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

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// wompiNewestFirst serves Wompi's full batch listing (GET /payouts with
// neither reference nor id) newest first, two batches a page, its page 2
// once from a server copy behind (newestFirstLag). Every other call goes
// to the simulator.
type wompiNewestFirst struct{ newestFirstLag }

func (s *wompiNewestFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/payouts") || q.Get("reference") != "" || q.Get("id") != "" {
		return http.DefaultTransport.RoundTrip(req)
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	const per = 2
	var full struct {
		Data struct {
			Records []json.RawMessage `json:"records"`
		} `json:"data"`
	}
	if err := fetchWhole(req, map[string]string{"page": "1", "limit": "1000"}, &full); err != nil {
		return nil, err
	}
	recs := s.records(full.Data.Records, page)
	total := len(recs)
	lo, hi := min((page-1)*per, total), min(page*per, total)
	out, err := json.Marshal(map[string]any{"status": 200, "data": map[string]any{
		"page": page, "limit": per, "total": total, "pages": (total + per - 1) / per,
		"records": append([]json.RawMessage{}, recs[lo:hi]...),
	}})
	if err != nil {
		return nil, err
	}
	return jsonAnswer(req, http.StatusOK, string(out)), nil
}

// Two faults together on Wompi: a batch pays x-1, then Redis is lost; the
// recovery's listing of every batch (newest first, two a page) has one
// page answered by a server copy one batch behind, the others by
// up-to-date copies, and x-1's batch is on no page the walk read:
//
//   - page 2 behind (x-1's batch first on it): its batches sit one place
//     earlier, x-1's on page 1 of that copy, already read; it announces one
//     batch fewer;
//   - page 1 behind (x-1's batch the newest): the later pages sit one place
//     later, x-1's batch on page 1 of theirs; they announce one batch more
//     (a listing that grew, which only a recovery's walk may refuse).
//
// The walk took the page: x-1 was never indexed, and a later batch sending
// x-1 again (the marketplace's copy) found it new and paid it twice.
func TestWompiNewestFirstListingWithAPageBehindIsNoProof(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		behind, older, newer int // the page behind; batches older and newer than x-1's
	}{
		{"Page2Behind", 2, 3, 2}, // as many pages without the newest
		{"Page1Behind", 1, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var on atomic.Bool
			tr := &wompiNewestFirst{newestFirstLag{on: &on, behind: tc.behind}}
			f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
			f.tap.base = tr
			amounts := map[string]int64{"x-1": 100_000, "y-1": 200_000}
			var bs []payout.Batch
			for i := range tc.older {
				bs = append(bs, simpleBatch(fmt.Sprintf("nf-older-%d", i), 1))
			}
			bs = append(bs, batch("nf-paying", amounts, "x-1"))
			for i := range tc.newer { // paid just before the loss
				bs = append(bs, simpleBatch(fmt.Sprintf("nf-newer-%d", i), 1))
			}
			e := f.engine(nil)
			stop, _ := f.run(e)
			for i := range bs {
				f.produce(f.topics.Batches, bs[i])
				eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == i+1 })
			}
			_ = stop()
			on.Store(true)
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			e = f.engine(nil)
			f.produce(f.topics.Batches, batch("nf-copy", amounts, "x-1", "y-1"))
			stop, _ = f.run(e)
			eventually(t, "the copy handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") >= 1 })
			_ = stop()
			if tr.served.Load() == 0 {
				t.Fatal("the recovery never read the page behind")
			}
			for _, id := range []string{"x-1", "y-1"} {
				if le, _ := f.sim.LedgerEntry(id); le.Accepted != 1 {
					t.Fatalf("%s paid %d times, want 1", id, le.Accepted)
				}
			}
		})
	}
}
