package wepayout_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

const hookKey = "test-api-key"

func hdr(v string) http.Header {
	h := http.Header{}
	if v != "" {
		h.Set("x-webhook-wp-signature", v)
	}
	return h
}

// TestWebhookSignatureVector: the signature is the plain SHA-256 of the
// concatenation, computed here by hand.
func TestWebhookSignatureVector(t *testing.T) {
	sum := sha256.Sum256([]byte("req-123" + "BRL" + "50.34" + hookKey))
	want := hex.EncodeToString(sum[:])
	if got := wepayout.WebhookSignature("req-123", "BRL", 5034, hookKey); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	// 7 cents is "0.07", 5000 is "50.00": the decimal string as sent.
	sum = sha256.Sum256([]byte("r" + "BRL" + "0.07" + "k"))
	if got := wepayout.WebhookSignature("r", "BRL", 7, "k"); got != hex.EncodeToString(sum[:]) {
		t.Fatal("7 cents is not signed as 0.07")
	}
	if wepayout.SignatureHeader("r", "BRL", 7, "k") != "Bearer "+hex.EncodeToString(sum[:]) {
		t.Fatal("header form")
	}
}

func TestVerifyWebhook(t *testing.T) {
	rec := rail.PayoutRequest{ID: "req-123", Currency: "BRL", AmountInCents: 5034}
	sig := wepayout.WebhookSignature(rec.ID, "BRL", rec.AmountInCents, hookKey)
	body := []byte(`{"id": 987, "invoice": "req-123", "end_to_end": "E1234", "status": {"id": 6, "name": "Cancelled"},
		"updated_at": "2024-09-25 15:55:18", "status_detail": {"code": "WE0001", "detail": "cancelled"}}`)

	w, err := wepayout.VerifyWebhook(hdr("Bearer "+sig), body, rec, hookKey)
	if err != nil {
		t.Fatal(err)
	}
	p := w.Payout()
	if p.ProviderID != "987" || p.ID != "req-123" || p.Status != payout.StatusCancelled || p.Reason != "WE0001" || w.EndToEnd != "E1234" {
		t.Fatalf("parsed %+v", p)
	}
	// updated_at has no zone: Sao Paulo, UTC-3.
	if want := time.Date(2024, 9, 25, 18, 55, 18, 0, time.UTC); !w.UpdatedAt.Equal(want) {
		t.Fatalf("updated_at %v, want %v", w.UpdatedAt.UTC(), want)
	}
	for _, ok := range []string{"Bearer " + strings.ToUpper(sig), "bearer " + sig, sig, "  Bearer  " + sig + " "} {
		if _, err := wepayout.VerifyWebhook(hdr(ok), body, rec, hookKey); err != nil {
			t.Errorf("header %q: %v", ok, err)
		}
	}
	noCur := rec
	noCur.Currency = ""
	if _, err := wepayout.VerifyWebhook(hdr(sig), body, noCur, hookKey); err != nil {
		t.Errorf("a record without currency is BRL: %v", err)
	}

	bad := []struct {
		name string
		h    http.Header
		body []byte
		rec  rail.PayoutRequest
		key  string
		want error
	}{
		{"no header", hdr(""), body, rec, hookKey, wepayout.ErrInvalidSignature},
		{"empty bearer", hdr("Bearer "), body, rec, hookKey, wepayout.ErrInvalidSignature},
		{"wrong hex", hdr("Bearer " + strings.Repeat("0", 64)), body, rec, hookKey, wepayout.ErrInvalidSignature},
		{"amount not our record's", hdr(sig), body, rail.PayoutRequest{ID: "req-123", Currency: "BRL", AmountInCents: 5035}, hookKey, wepayout.ErrInvalidSignature},
		{"currency not our record's", hdr(sig), body, rail.PayoutRequest{ID: "req-123", Currency: "USD", AmountInCents: 5034}, hookKey, wepayout.ErrInvalidSignature},
		{"another key", hdr(sig), body, rec, "other-key", wepayout.ErrInvalidSignature},
		{"no key configured", hdr(sig), body, rec, "", wepayout.ErrInvalidSignature},
		{"no record", hdr(sig), body, rail.PayoutRequest{}, hookKey, wepayout.ErrInvalidSignature},
		{"body for another invoice", hdr(sig), []byte(`{"id": 1, "invoice": "req-999", "status": {"id": 3}}`), rec, hookKey, wepayout.ErrInvalidSignature},
		{"not JSON", hdr(sig), []byte(`not json`), rec, hookKey, wepayout.ErrMalformedWebhook},
		{"no status", hdr(sig), []byte(`{"id": 1, "invoice": "req-123"}`), rec, hookKey, wepayout.ErrMalformedWebhook},
		{"no id", hdr(sig), []byte(`{"invoice": "req-123", "status": {"id": 3}}`), rec, hookKey, wepayout.ErrMalformedWebhook},
		{"bad time", hdr(sig), []byte(`{"id": 1, "invoice": "req-123", "status": {"id": 3}, "updated_at": "yesterday"}`), rec, hookKey, wepayout.ErrMalformedWebhook},
	}
	for _, tc := range bad {
		if _, err := wepayout.VerifyWebhook(tc.h, tc.body, tc.rec, tc.key); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestVerifyWebhookAloneDoesNotCoverTheBody documents the protocol's limit:
// the signature covers invoice, currency, amount and key, so a genuine
// webhook replayed with another status still verifies. ConfirmWebhook
// reads the payment and returns WEpayout's own status.
func TestVerifyWebhookAloneDoesNotCoverTheBody(t *testing.T) {
	ctx := context.Background()
	sim, c, _ := newSim(t, weptest.Config{}, wepayout.Config{})
	req := pixRequest("hook-forge", 2500)
	if _, err := c.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	h, body, err := sim.SignedWebhook(req.ID)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(strings.Replace(string(body), `"status":{"id":1,"name":"Created"}`, `"status":{"id":3,"name":"Paid"}`, 1))
	if string(forged) == string(body) {
		t.Fatalf("test setup: status not found in %s", body)
	}
	w, err := wepayout.VerifyWebhook(h, forged, req, weptest.DefaultAPIKey)
	if err != nil {
		t.Fatalf("the signature does not cover the status, yet verification failed: %v", err)
	}
	if w.Payout().Status != payout.StatusApproved {
		t.Fatalf("forged body parsed as %s", w.Payout().Status)
	}
	p, err := c.ConfirmWebhook(ctx, w)
	if err != nil || p.Status != payout.StatusPending {
		t.Fatalf("confirmed %+v %v: want WEpayout's own PENDING, not the forged APPROVED", p, err)
	}
	// Another payment's id under our invoice's signature: refused.
	other := pixRequest("hook-other", 100)
	op, _ := c.Create(ctx, other)
	w.ID = wepayout.ID(op.ProviderID)
	if _, err := c.ConfirmWebhook(ctx, w); !errors.Is(err, wepayout.ErrInvalidSignature) {
		t.Fatalf("a webhook naming another invoice's payment confirmed: %v", err)
	}
	w.ID = "999999"
	if _, err := c.ConfirmWebhook(ctx, w); !errors.Is(err, wepayout.ErrInvalidSignature) {
		t.Fatalf("a webhook naming no payment confirmed: %v", err)
	}
	sim.FailNext(http.StatusServiceUnavailable)
	w.ID = wepayout.ID(op.ProviderID)
	if _, err := c.ConfirmWebhook(ctx, w); errors.Is(err, wepayout.ErrInvalidSignature) || rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("a 503 while confirming: %v, want a retryable read error", err)
	}
}

func TestMapStatus(t *testing.T) {
	for _, tc := range []struct {
		id     int
		detail *wepayout.StatusDetail
		want   payout.Status
		reason string
		known  bool
	}{
		{1, nil, payout.StatusPending, "", true}, {2, nil, payout.StatusPending, "", true}, {7, nil, payout.StatusPending, "", true},
		{3, nil, payout.StatusApproved, "", true}, {4, nil, payout.StatusFailed, "", true},
		{5, nil, payout.StatusFailed, "WEPAYOUT_5", true},
		{6, nil, payout.StatusCancelled, "WEPAYOUT_6", true},
		{6, &wepayout.StatusDetail{}, payout.StatusCancelled, "WEPAYOUT_6", true},
		{6, &wepayout.StatusDetail{Code: "WE0001"}, payout.StatusCancelled, "WE0001", true},
		{0, nil, "", "", false}, {8, nil, "", "", false}, {-1, nil, "", "", false},
	} {
		st, reason, known := wepayout.MapStatus(tc.id, tc.detail)
		if st != tc.want || reason != tc.reason || known != tc.known {
			t.Errorf("MapStatus(%d, %v) = %q %q %v", tc.id, tc.detail, st, reason, known)
		}
		if st.Final() && !known {
			t.Errorf("unknown %d is final", tc.id)
		}
	}
}

// A webhook body that is not UTF-8 is refused before it is decoded: an
// unsigned MiB of invalid bytes in the invoice made encoding/json allocate
// 11 MB. A body of valid UTF-8 beyond ASCII still parses.
func TestParseWebhookRefusesNonUTF8(t *testing.T) {
	body := []byte(`{"id":1,"invoice":"` + strings.Repeat("\xff", 1<<20-64) + `","status":{"id":1}}`)
	var err error
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = wepayout.ParseWebhook(body)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, wepayout.ErrMalformedWebhook) || !strings.Contains(err.Error(), "not UTF-8") {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(body)) {
		t.Fatalf("a %d-byte body allocated %d bytes before it was refused", len(body), n)
	}
	w, err := wepayout.ParseWebhook([]byte(`{"id":1,"invoice":"req-1","status":{"id":6},"status_detail":{"code":"WE0001","detail":"Transação não autorizada"}}`))
	if err != nil || w.StatusDetail == nil || w.StatusDetail.Detail != "Transação não autorizada" {
		t.Fatalf("valid UTF-8: %+v %v", w, err)
	}
}
