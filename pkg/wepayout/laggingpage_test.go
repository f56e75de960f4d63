package wepayout_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// TestWalkDoesNotStopAtALaggingPagesLastPage: page 1 of the listing
// announces three pages; page 2, answered by a replica behind (it holds two
// payments), announces two. Payments are never deleted, so page 2's
// smaller last_page is a lagging answer, not the end: a walk that stops
// there misses page 3 (the newest payment, e.g. one paid just before a
// crash), and the recovery's listing indexes an incomplete set as
// complete.
func TestWalkDoesNotStopAtALaggingPagesLastPage(t *testing.T) {
	var page3 atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "1":
			io.WriteString(w, `{"data": [{"id": 1, "external_id": "a", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 1, "last_page": 3, "per_page": 1, "total": 3}}`)
		case "2":
			io.WriteString(w, `{"data": [{"id": 2, "external_id": "b", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 2, "last_page": 2, "per_page": 1, "total": 2}}`)
		case "3":
			page3.Add(1)
			io.WriteString(w, `{"data": [{"id": 3, "external_id": "c", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 3, "last_page": 3, "per_page": 1, "total": 3}}`)
		default:
			io.WriteString(w, `{"data": [], "meta": {"last_page": 3, "per_page": 1, "total": 3}}`)
		}
	})
	ids, lerr := listAll(c, rail.ListFilter{})
	if lerr == nil && len(ids) != 3 {
		t.Fatalf("the listing ended without error after %v (page 3 read %d times): page 1 announced 3 pages, the lagging page 2 announced 2",
			ids, page3.Load())
	}
}

// TestWalkDoesNotEndAtAnEmptyPageWithoutMeta: page 1 announces two pages;
// page 2 comes back as {"data": []} with no meta (a gateway's or a cache's
// stale answer, which readEmptyPage accepts). The earlier page's meta
// still says page 2 holds payments: it is a page the server failed to
// fill, not the end, as an empty page whose own meta announces it is.
func TestWalkDoesNotEndAtAnEmptyPageWithoutMeta(t *testing.T) {
	var page2 atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "1":
			io.WriteString(w, `{"data": [{"id": 1, "external_id": "a", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 1, "last_page": 2, "per_page": 1, "total": 2}}`)
		case "2":
			if page2.Add(1) == 1 {
				io.WriteString(w, `{"data": []}`)
				return
			}
			io.WriteString(w, `{"data": [{"id": 2, "external_id": "b", "amount": 100, "status": {"id": 3}}], "meta": {"current_page": 2, "last_page": 2, "per_page": 1, "total": 2}}`)
		default:
			io.WriteString(w, `{"data": [], "meta": {"last_page": 2, "per_page": 1, "total": 2}}`)
		}
	})
	ids, lerr := listAll(c, rail.ListFilter{})
	if lerr == nil && len(ids) != 2 {
		t.Fatalf("the listing ended without error after %v: page 1 announced 2 pages, page 2 came back empty without meta", ids)
	}
}

// listAll walks c's listing: the ids listed until the first error, and
// that error.
func listAll(c *wepayout.Client, f rail.ListFilter) (ids []string, err error) {
	for p, e := range c.List(context.Background(), f) {
		if e != nil {
			return ids, e
		}
		ids = append(ids, p.ID)
	}
	return ids, nil
}
