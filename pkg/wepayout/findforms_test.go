package wepayout_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TestFindReadsBothIDFields: a listing by external_id whose payment names
// our id in external_id while its invoice says something else held the
// payment for another request's: the payee was proven absent and paid
// again. And our all-digit "000777" listed as "777" (kept as a number by
// the provider) proved absence too. Each payment either field names
// exactly is ours; one naming a form of ours proves nothing.
func TestFindReadsBothIDFields(t *testing.T) {
	page := func(item string) string {
		return `{"data": [` + item + `], "meta": {"current_page": 1, "last_page": 1, "per_page": 100, "total": 1}}`
	}
	ours := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, page(`{"id": 5, "invoice": "WP-INV-5", "external_id": "000777", "amount": 100, "status": {"id": 1}}`))
	})
	got, err := ours.Find(context.Background(), "000777")
	if err != nil || len(got) != 1 || got[0].ProviderID != "5" || got[0].ID != "000777" {
		t.Fatalf("find: %+v %v: want payment 5, listed under our external_id", got, err)
	}
	numeric := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, page(`{"id": 6, "external_id": "777", "amount": 100, "status": {"id": 1}}`))
	})
	if got, err := numeric.Find(context.Background(), "000777"); err == nil {
		t.Fatalf("find over our id without its leading zeros proved absence: %+v", got)
	}
}

// TestListNamesNoIDWhenTwoDiffer: a listed payment whose invoice and
// external_id differ was indexed by a recovery under its invoice alone,
// and the payee of our id in external_id proven new: posted without a
// lookup, paid twice. Listed without an id, it is counted unindexed.
func TestListNamesNoIDWhenTwoDiffer(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data": [{"id": 5, "invoice": "WP-INV-5", "external_id": "000777", "amount": 100, "status": {"id": 1}}], "meta": {"current_page": 1, "last_page": 1, "per_page": 100, "total": 1}}`)
	})
	n := 0
	for p, err := range c.List(context.Background(), rail.ListFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if p.ID != "" || p.ProviderID != "5" {
			t.Fatalf("listed %+v: want payment 5 without an id of ours", p)
		}
	}
	if n != 1 {
		t.Fatalf("listed %d payments, want 1", n)
	}
}
