package wepayout_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// FuzzWEpayoutWebhook feeds arbitrary bodies and signature headers to the
// parser and the verifier. Properties: no panic; every error is
// ErrInvalidSignature or ErrMalformedWebhook; a verified webhook carries our
// invoice and a genuine signature; a known status maps to a pipeline status
// and an unknown one to none; errors never echo the body's document-like
// digits.
func FuzzWEpayoutWebhook(f *testing.F) {
	rec := rail.PayoutRequest{ID: "req-fuzz-1", Currency: "BRL", AmountInCents: 5034}
	good := wepayout.SignatureHeader(rec.ID, "BRL", rec.AmountInCents, hookKey)
	f.Add([]byte(`{"id": 1, "invoice": "req-fuzz-1", "end_to_end": "E1", "status": {"id": 3, "name": "Paid"}, "updated_at": "2024-09-25 15:55:18"}`), good)
	f.Add([]byte(`{"id": "2", "invoice": "req-fuzz-1", "status": {"id": "6"}, "status_detail": {"code": "WE0001", "detail": "x"}}`), good)
	f.Add([]byte(`{"id": 3, "invoice": "req-fuzz-1", "status": {"id": 99}}`), strings.ToUpper(good))
	f.Add([]byte(`{"id": 1, "invoice": "other", "status": {"id": 3}}`), good)
	f.Add([]byte(`{"id": 1, "invoice": "req-fuzz-1", "status": {"id": 3}, "updated_at": "2024-13-45 99:99:99"}`), good)
	f.Add([]byte(`[]`), "Bearer 00")
	f.Add([]byte(`{"id": 52998224725, "invoice": "req-fuzz-1", "status": {"id": "x52998224725"}}`), good)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		if w, err := wepayout.ParseWebhook(body); err == nil {
			_ = w.Payout()
		} else if !errors.Is(err, wepayout.ErrMalformedWebhook) {
			t.Fatalf("parse error outside the family: %v", err)
		}
		h := http.Header{}
		h.Set("x-webhook-wp-signature", sig)
		w, err := wepayout.VerifyWebhook(h, body, rec, hookKey)
		if err != nil {
			if !errors.Is(err, wepayout.ErrInvalidSignature) && !errors.Is(err, wepayout.ErrMalformedWebhook) {
				t.Fatalf("verify error outside the family: %v", err)
			}
			if strings.Contains(err.Error(), "52998224725") {
				t.Fatalf("error echoes a document: %v", err)
			}
			return
		}
		s := strings.ToLower(strings.TrimSpace(sig))
		s = strings.TrimSpace(strings.TrimPrefix(s, "bearer "))
		if s != wepayout.WebhookSignature(rec.ID, "BRL", rec.AmountInCents, hookKey) {
			t.Fatalf("verified with signature %q", sig)
		}
		if w.Invoice != rec.ID || w.ID == "" {
			t.Fatalf("verified webhook %+v is not our record's", w)
		}
		p := w.Payout()
		if w.KnownStatus() != (p.Status != "") {
			t.Fatalf("status %d maps to %q, known %v", w.Status.ID, p.Status, w.KnownStatus())
		}
	})
}

// FuzzParseReais: ParseReais never panics, and whatever it accepts formats
// back to an amount it parses to the same cents.
func FuzzParseReais(f *testing.F) {
	for _, s := range []string{"50.34", "R$43.34", "R$ 1.234,56", "1,234.56", "0.29", "-1.00", "1.005", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := wepayout.ParseReais(s)
		if err != nil {
			if !errors.Is(err, wepayout.ErrAmount) {
				t.Fatalf("error outside the family: %v", err)
			}
			return
		}
		back, err := wepayout.ParseReais(wepayout.FormatReais(v))
		if err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d %v", s, v, wepayout.FormatReais(v), back, err)
		}
	})
}
