package wepayout_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// TestVerifyWebhookRefusesEverythingWithoutAKey: with no API key
// configured, VerifyWebhook refuses even a header signed with the empty
// key, which anyone can compute from the body's invoice and our amount.
// ("no key configured" in TestVerifyWebhook sends a header signed with
// another key, which the comparison refuses on its own.)
func TestVerifyWebhookRefusesEverythingWithoutAKey(t *testing.T) {
	rec := rail.PayoutRequest{ID: "req-123", Currency: "BRL", AmountInCents: 5034}
	body := []byte(`{"id": 1, "invoice": "req-123", "status": {"id": 4}}`)
	forged := "Bearer " + wepayout.WebhookSignature(rec.ID, "BRL", rec.AmountInCents, "")
	if w, err := wepayout.VerifyWebhook(hdr(forged), body, rec, ""); !errors.Is(err, wepayout.ErrInvalidSignature) {
		t.Fatalf("a webhook signed with the empty key, no key configured: %+v %v, want ErrInvalidSignature", w, err)
	}
}

// TestCreateAnsweredWithoutAnIDIsUnknown: a 2xx to a create whose payment
// has no id names nothing the tracker can follow (the hand-off id is the
// provider's id): the payment may exist, so the outcome is unknown and the
// lookup by our id decides, never a payout handed off without an id.
func TestCreateAnsweredWithoutAnIDIsUnknown(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"invoice": "req-1", "status": {"id": 1}}`)
	})
	p, err := c.Create(context.Background(), pixRequest("req-1", 100))
	if err == nil {
		t.Fatalf("a create answered without a payment id handed off %+v", p)
	}
	if _, cl := classOf(t, err); cl != rail.OutcomeUnknown {
		t.Fatalf("a create answered without a payment id: %v, want %s", err, rail.OutcomeUnknown)
	}
}
