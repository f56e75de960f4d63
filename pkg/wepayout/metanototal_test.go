package wepayout_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TestWalkRefusesAPageBehindWhoseMetaHasNoTotal: the listing is served
// newest first (g the newest), two payments a page, with a meta that
// carries last_page but no total. The first read of page 2 comes from a
// replica one payment behind (it lacks g): its payments sit a place
// earlier, so e, which that replica lists on page 1, is on no page the
// walk reads, and its smaller last_page (3, page 1 announced 4) is the
// only sign of it. Taken as "not the end", the walk listed every payment
// but e, and a recovery indexed that set as complete.
func TestWalkRefusesAPageBehindWhoseMetaHasNoTotal(t *testing.T) {
	const per = 2
	all := []string{"g", "f", "e", "d", "c", "b", "a"} // newest first
	var behind atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		list := all
		if page == 2 && behind.Add(1) == 1 {
			list = all[1:] // a replica behind the newest payment
		}
		last := (len(list) + per - 1) / per
		lo, hi := min((page-1)*per, len(list)), min(page*per, len(list))
		var recs []string
		for _, id := range list[lo:hi] {
			recs = append(recs, fmt.Sprintf(`{"id": %d, "external_id": %q, "amount": 100, "status": {"id": 3}}`, int(id[0]), id))
		}
		fmt.Fprintf(w, `{"data": [%s], "meta": {"current_page": %d, "last_page": %d, "per_page": %d}}`, strings.Join(recs, ","), page, last, per)
	})
	ids, err := listAll(c, rail.ListFilter{})
	if err == nil && !slices.Contains(ids, "e") {
		t.Fatalf("the listing ended without error after %v: e, on page 1 of the replica behind, was on no page read", ids)
	}
}
