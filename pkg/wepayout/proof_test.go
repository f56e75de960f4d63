package wepayout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TestFindRefusesAnAnswerWithoutData: a 200 to the lookup that carries no
// "data" array ({}, null, a gateway's {"message": ...}, "data": null) is
// not an empty listing. Read as one, Find "proves" a payee absent that may
// have been paid by a POST whose answer was lost, and the dispatcher posts
// it again.
func TestFindRefusesAnAnswerWithoutData(t *testing.T) {
	for _, body := range []string{`{}`, `null`, `{"message": "Service temporarily unavailable"}`, `{"data": null}`,
		`{"meta": {"current_page": 1, "last_page": 1, "per_page": 100, "total": 1}}`} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
		if got, err := c.Find(context.Background(), "inv-1"); err == nil {
			t.Errorf("find answered %s: %+v, nil: proved absent", body, got)
		}
	}
	// The documented empty answers still prove absence.
	for _, body := range []string{`{"data": []}`, `[]`, `{"data": [], "meta": {"current_page": 1, "last_page": 1, "per_page": 100, "total": 0}}`} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
		if got, err := c.Find(context.Background(), "inv-1"); err != nil || len(got) != 0 {
			t.Errorf("find answered %s: %+v %v, want absent", body, got, err)
		}
	}
}

// TestWalkRefusesAnEmptyPageBeforeTheLast: a listing whose page 1 said
// there are 3 pages answers page 2 empty (a replica behind, a glitch).
// Payments are never deleted, so that page is not the end of the
// listing: stopping there silently drops page 3, and a recovery that
// rebuilds the duplicate index from it "proves" new a payee that was paid.
func TestWalkRefusesAnEmptyPageBeforeTheLast(t *testing.T) {
	var calls atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		page := r.URL.Query().Get("page")
		meta := func(total int) string {
			return fmt.Sprintf(`"meta": {"current_page": %s, "last_page": 3, "per_page": 2, "total": %d}`, page, total)
		}
		switch page {
		case "1":
			fmt.Fprintf(w, `{"data": [{"id": 1, "external_id": "a", "amount": 1, "status": {"id": 3}}, {"id": 2, "external_id": "b", "amount": 1, "status": {"id": 3}}], %s}`, meta(5))
		case "2":
			fmt.Fprintf(w, `{"data": [], %s}`, meta(5))
		default:
			fmt.Fprintf(w, `{"data": [{"id": 5, "external_id": "paid", "amount": 1, "status": {"id": 3}}], %s}`, meta(5))
		}
	})
	ids, err := listAll(c, rail.ListFilter{})
	if err == nil {
		t.Fatalf("listing with an empty page 2 of 3 ended without an error after %d calls, listing %s: payment 5 (\"paid\") silently missed",
			calls.Load(), strings.Join(ids, ","))
	}
}
