package wompi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// pageServer answers GET /payouts/p1/transactions from statuses, one
// transaction per entry, limit per page, and counts the pages it served.
type pageServer struct {
	mu       sync.Mutex
	statuses []string
	served   int
	// fixed: pages of 3 whatever the limit asked, and no page count (the
	// client stops at the first page shorter than its limit).
	fixed bool
}

func (s *pageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served++
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if s.fixed {
		limit = 3
	}
	pages := (len(s.statuses) + limit - 1) / limit
	var recs []string
	for i := (page - 1) * limit; i < min(page*limit, len(s.statuses)); i++ {
		recs = append(recs, fmt.Sprintf(`{"id":"tx-%d","reference":"req-%d","status":%q,"amountInCents":%d}`, i, i, s.statuses[i], 100+i))
	}
	w.Header().Set("Content-Type", "application/json")
	if s.fixed {
		fmt.Fprintf(w, `{"status":200,"data":{"records":[%s]}}`, strings.Join(recs, ","))
		return
	}
	// Every answer has its own trace id, as Wompi's do.
	fmt.Fprintf(w, `{"status":200,"meta":{"trace_id":"t-%d"},"data":{"page":%d,"limit":%d,"total":%d,"pages":%d,"records":[%s]}}`,
		s.served, page, limit, len(s.statuses), pages, strings.Join(recs, ","))
}

func (s *pageServer) set(i int, st string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i == len(s.statuses) {
		s.statuses = append(s.statuses, st)
		return
	}
	s.statuses[i] = st
}

func stampedRail(t *testing.T, pageSize int, srv *httptest.Server) *wompi.Rail {
	t.Helper()
	c, err := wompi.New(wompi.Config{BaseURL: srv.URL, APIKey: "k", PrincipalID: "p", PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	return wompi.NewRail(c, wompi.RailConfig{})
}

func allItems(t *testing.T, r *wompi.Rail) []rail.Payout {
	t.Helper()
	var out []rail.Payout
	for p, err := range r.Items(context.Background(), "p1") {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// ItemsStamped reads what Items reads, and reports a walk unchanged only
// when every page it reads is byte for byte the stamped walk's: a change on
// the first, a middle or the last page, one page more or fewer, or another
// page size is read and decoded whole.
func TestItemsStampedSkipsOnlyIdenticalWalks(t *testing.T) {
	s := &pageServer{statuses: slices.Repeat([]string{"PENDING"}, 7)}
	srv := httptest.NewServer(s)
	defer srv.Close()
	r := stampedRail(t, 3, srv) // pages of 3, 3 and 1
	ctx := context.Background()
	walk := func(stamp string) ([]rail.Payout, string, bool) {
		t.Helper()
		items, next, same, err := r.ItemsStamped(ctx, "p1", stamp)
		if err != nil {
			t.Fatal(err)
		}
		return items, next, same
	}
	items, stamp, same := walk("")
	if same || stamp == "" || !reflect.DeepEqual(items, allItems(t, r)) {
		t.Fatalf("a first walk: unchanged=%v stamp=%q, items %+v; want Items' %+v", same, stamp, items, allItems(t, r))
	}
	before := s.served
	if items, again, same := walk(stamp); !same || again != stamp || items != nil {
		t.Fatalf("an identical walk: unchanged=%v stamp=%q items=%v, want unchanged", same, again, items)
	}
	if n := s.served - before; n != 3 {
		t.Fatalf("an identical walk read %d pages, want all 3", n)
	}
	for _, c := range []struct {
		name   string
		change func()
	}{
		{"first page", func() { s.set(0, "APPROVED") }},
		{"middle page", func() { s.set(4, "FAILED") }},
		{"last page", func() { s.set(6, "APPROVED") }},
		{"one more page", func() { s.set(7, "PENDING") }},
	} {
		c.change()
		items, next, same := walk(stamp)
		if same || next == stamp || !reflect.DeepEqual(items, allItems(t, r)) {
			t.Fatalf("%s changed: unchanged=%v, items %+v; want Items' %+v", c.name, same, items, allItems(t, r))
		}
		stamp = next
		if _, again, same := walk(stamp); !same || again != stamp {
			t.Fatalf("%s changed, walked again: unchanged=%v", c.name, same)
		}
	}
	// One page fewer: the stamp's last page is never read.
	s.mu.Lock()
	s.statuses = s.statuses[:6]
	s.mu.Unlock()
	if items, _, same := walk(stamp); same || !reflect.DeepEqual(items, allItems(t, r)) {
		t.Fatalf("a page fewer: unchanged=%v", same)
	}
	_, stamp, _ = walk("")
	// Another page size reads other pages.
	if _, _, same, _ := stampedRail(t, 2, srv).ItemsStamped(ctx, "p1", stamp); same {
		t.Fatal("a stamp made with pages of 3 matched a walk with pages of 2")
	}
	for _, bad := range []string{"x", "l3", "l3,", stamp + ",00"} {
		if _, _, same := walk(bad); same {
			t.Fatalf("stamp %q matched", bad)
		}
	}
}

// A walk longer than a stamp can hold is never reported unchanged: its
// stamp is empty.
func TestItemsStampedLongWalkHasNoStamp(t *testing.T) {
	s := &pageServer{statuses: slices.Repeat([]string{"PENDING"}, 130)}
	srv := httptest.NewServer(s)
	defer srv.Close()
	r := stampedRail(t, 1, srv)
	items, stamp, same, err := r.ItemsStamped(context.Background(), "p1", "")
	if err != nil || same || stamp != "" || len(items) != 130 {
		t.Fatalf("a 130-page walk: %d items, stamp %q, unchanged=%v, %v; want 130 items and no stamp", len(items), stamp, same, err)
	}
}

// A stamp names the page size it was read with: a provider that ignores
// the size answers the same bytes to another one, where the walk ends
// elsewhere (here, at the first page shorter than the size).
func TestItemsStampedNamesItsPageSize(t *testing.T) {
	s := &pageServer{statuses: slices.Repeat([]string{"PENDING"}, 7), fixed: true}
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx := context.Background()
	items, stamp, _, err := stampedRail(t, 3, srv).ItemsStamped(ctx, "p1", "")
	if err != nil || len(items) != 7 {
		t.Fatalf("pages of 3: %d items (%v), want 7", len(items), err)
	}
	r5 := stampedRail(t, 5, srv)
	items, _, same, err := r5.ItemsStamped(ctx, "p1", stamp)
	if err != nil || same || !reflect.DeepEqual(items, allItems(t, r5)) || len(items) != 3 {
		t.Fatalf("pages of 5 with the stamp of pages of 3: unchanged=%v, %d items (%v); want the 3 Items reads", same, len(items), err)
	}
}
