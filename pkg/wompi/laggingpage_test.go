package wompi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// pagesServer answers GET /v1/payouts from pages: the body of page n is
// pages[n] (records and the page's own announcement), an empty page past
// them.
func pagesServer(t *testing.T, pages map[string]string) *wompi.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Query().Get("page")]
		if !ok {
			body = `{"page":9,"limit":1,"total":0,"pages":0,"records":[]}`
		}
		fmt.Fprintf(w, `{"status":200,"data":%s}`, body)
	}))
	t.Cleanup(ts.Close)
	c, err := wompi.New(wompi.Config{BaseURL: ts.URL + "/v1", APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// walk lists every payout of f, and the error that ended the walk.
func walk(c *wompi.Client, f wompi.PayoutsFilter) ([]string, error) {
	var ids []string
	for p, err := range c.Payouts(context.Background(), f) {
		if err != nil {
			return ids, err
		}
		ids = append(ids, p.ID)
	}
	return ids, nil
}

func payoutsPage(page, pages, total int, ids ...string) string {
	recs := ""
	for i, id := range ids {
		if i > 0 {
			recs += ","
		}
		recs += fmt.Sprintf(`{"id":%q,"status":"PENDING","reference":"r-%s"}`, id, id)
	}
	return fmt.Sprintf(`{"page":%d,"limit":1,"total":%d,"pages":%d,"records":[%s]}`, page, total, pages, recs)
}

// A page from a server copy behind (it holds two batches) announces two
// pages where page 1 announced three. Records are never deleted, so it is
// not the end: a walk that stopped there missed page 3 (the newest batch,
// e.g. one posted just before a crash), and a recovery's listing indexed
// an incomplete set as complete. Nor is it a page to take: Wompi does not
// publish its order, and in a listing newest first that copy's batches sit
// a place earlier than on the pages read, the one it moved onto page 1
// (already read) on no page the walk reads; a page announcing fewer
// records with as many pages is the same. Nor is an empty page below the
// count an earlier page announced, with or without its own announcement.
// Each is a retryable ErrInconsistentPage. A listing by status shrinks as
// batches change status: there the page's own count and an empty page end
// it.
func TestPaginateStopsAtTheMostPagesAnnounced(t *testing.T) {
	for name, pages := range map[string]map[string]string{
		"a lagging page announces fewer pages": {
			"1": payoutsPage(1, 3, 3, "a"),
			"2": payoutsPage(2, 2, 2, "b"),
			"3": payoutsPage(3, 3, 3, "c"),
		},
		// Newest first, two a page, e the newest: the copy behind lacks
		// e, so its page 2 starts at b, and c (on its page 1) is missed.
		"newest first, a page one batch behind": {
			"1": strings.Replace(payoutsPage(1, 3, 5, "e", "d"), `"limit":1`, `"limit":2`, 1),
			"2": strings.Replace(payoutsPage(2, 3, 4, "b", "a"), `"limit":1`, `"limit":2`, 1),
			"3": strings.Replace(payoutsPage(3, 3, 5, "a"), `"limit":1`, `"limit":2`, 1),
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := pagesServer(t, pages)
			ids, err := walk(c, wompi.PayoutsFilter{Limit: 2})
			if !errors.Is(err, wompi.ErrInconsistentPage) || !wompi.IsRetryable(err) {
				t.Fatalf("listed %v, %v: want a retryable ErrInconsistentPage, never a listing that looks complete", ids, err)
			}
		})
	}
	for name, empty := range map[string]string{
		"an empty page announcing nothing": `{"page":2,"limit":1,"total":0,"pages":0,"records":[]}`,
		"an empty page announcing more":    payoutsPage(2, 3, 3),
	} {
		t.Run(name, func(t *testing.T) {
			c := pagesServer(t, map[string]string{"1": payoutsPage(1, 3, 3, "a"), "2": empty, "3": payoutsPage(3, 3, 3, "c")})
			ids, err := walk(c, wompi.PayoutsFilter{Limit: 1})
			if !errors.Is(err, wompi.ErrInconsistentPage) || !wompi.IsRetryable(err) {
				t.Fatalf("listed %v, %v: want a retryable ErrInconsistentPage, never a listing that looks complete", ids, err)
			}
		})
	}
	t.Run("a listing by status", func(t *testing.T) {
		c := pagesServer(t, map[string]string{
			"1": payoutsPage(1, 3, 3, "a"),
			"2": payoutsPage(2, 2, 2, "b"), // "c" changed status meanwhile
			"3": payoutsPage(3, 2, 2),
		})
		ids, err := walk(c, wompi.PayoutsFilter{Limit: 1, Statuses: []wompi.BatchStatus{"PENDING"}})
		if err != nil || len(ids) != 2 {
			t.Fatalf("listed %v, %v: want the two left, no error", ids, err)
		}
	})
	t.Run("the last page", func(t *testing.T) {
		c := pagesServer(t, map[string]string{"1": payoutsPage(1, 2, 2, "a"), "2": payoutsPage(2, 2, 2, "b")})
		ids, err := walk(c, wompi.PayoutsFilter{Limit: 1})
		if err != nil || len(ids) != 2 {
			t.Fatalf("listed %v, %v", ids, err)
		}
	})
}
