package dispatch

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
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
	return rewriteAnswer(resp, func(raw []byte) ([]byte, error) {
		var pg map[string]any
		if err := json.Unmarshal(raw, &pg); err != nil {
			return nil, err
		}
		pg["meta"] = map[string]int{"current_page": 2, "last_page": 2, "per_page": 1, "total": 2}
		return json.Marshal(pg)
	})
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
	t.Parallel()
	var on atomic.Bool
	tr := &laggingPageOnce{on: &on}
	paidOnceThroughAFaultyPage(t, tr, &on, &tr.served, "lag-page", 2)
}
