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
// recovery's listing of every batch (newest first, two a page, the paying
// batch first on page 2) has its page 2 answered by a server copy one
// batch behind. Its batches sit one place earlier, so the paying batch,
// which that copy lists on page 1, is on neither page the walk read. The
// walk took the page (only fewer pages, or an empty page, was known as a
// copy behind; this one announced one batch fewer in its total): x-1 was
// never indexed, and a later batch sending x-1 again (the marketplace's
// copy) found it new and paid it twice.
func TestWompiNewestFirstListingWithAPageBehindIsNoProof(t *testing.T) {
	t.Parallel()
	var on atomic.Bool
	tr := &wompiNewestFirst{newestFirstLag{on: &on}}
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	f.tap.base = tr
	amounts := map[string]int64{"x-1": 100_000, "y-1": 200_000}
	var bs []payout.Batch
	for i := range 3 {
		bs = append(bs, simpleBatch(fmt.Sprintf("nf-older-%d", i), 1))
	}
	bs = append(bs, batch("nf-paying", amounts, "x-1"))
	for i := range 2 { // paid just before the loss: newer than x-1's batch
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
	if le, _ := f.sim.LedgerEntry("x-1"); le.Accepted != 1 {
		t.Fatalf("x-1 paid %d times, want 1", le.Accepted)
	}
	if le, _ := f.sim.LedgerEntry("y-1"); le.Accepted != 1 {
		t.Fatalf("y-1 paid %d times, want 1", le.Accepted)
	}
}
