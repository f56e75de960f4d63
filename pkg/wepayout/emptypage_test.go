package wepayout_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TestFindRefusesAnEmptyFirstPageWithinItsTotal: the lookup by our id is
// answered with an empty first page whose own meta counts one payment
// (total 1, last_page 1: a replica that has the count but not yet the
// row). Payments are never deleted, so it is a page the server failed to
// fill: taken as the end, it would prove our payee absent, and the
// dispatcher would post a payment WEpayout already holds.
func TestFindRefusesAnEmptyFirstPageWithinItsTotal(t *testing.T) {
	for name, body := range map[string]string{
		"last_page 1": `{"data": [], "meta": {"current_page": 1, "last_page": 1, "per_page": 25, "total": 1}}`,
		"last_page 0": `{"data": [], "meta": {"current_page": 1, "last_page": 0, "per_page": 25, "total": 1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := fake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
			got, err := c.Find(context.Background(), "req-1")
			if err == nil {
				t.Fatalf("Find over an empty page announcing a payment proved absence: %v", got)
			}
			if cl := rail.ClassOf(err); cl != rail.Retryable {
				t.Fatalf("%v: class %s, want retryable (the next lookup may read the page filled)", err, cl)
			}
		})
	}
}

// TestCreate409IsAlreadyExists: a 409 to a create can only mean that
// WEpayout holds a payment under our invoice [ours: not published]. Read
// as Permanent, the payee would be given up while the provider pays it,
// and a request sent again would pay it twice.
func TestCreate409IsAlreadyExists(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"message":"Conflict"}`)
	})
	_, err := c.Create(context.Background(), pixRequest("req-1", 100))
	re, cl := classOf(t, err)
	if cl != rail.AlreadyExists || re.HTTPStatus != http.StatusConflict {
		t.Fatalf("%v: class %s status %d, want %s 409", err, cl, re.HTTPStatus, rail.AlreadyExists)
	}
}
