package smartfastpay

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The published test vector [doc].
const (
	vecSecret = "my-secret"
	vecT      = "1681235417000"
	vecBody   = `{"callback":true,"value":"value-field"}`
	vecSig    = "b9ffafcd16416bd11e36f877c2d7ccc71633d174f8245abc49fc2aef7e6633c8"
)

func TestVerifyPublishedVector(t *testing.T) {
	w := Webhooks{Secret: vecSecret}
	at, err := w.Verify("t="+vecT+",v1="+vecSig, []byte(vecBody))
	if err != nil {
		t.Fatalf("the published vector does not verify: %v", err)
	}
	if at.UnixMilli() != 1681235417000 {
		t.Fatalf("signed at %v", at)
	}
	if got := Sign(vecSecret, time.UnixMilli(1681235417000), []byte(vecBody)); got != "t="+vecT+",v1="+vecSig {
		t.Fatalf("Sign = %s", got)
	}
	// Upper-case hex, another scheme and spaces are accepted.
	if _, err := w.Verify(" t="+vecT+", v0=abc , v1="+strings.ToUpper(vecSig), []byte(vecBody)); err != nil {
		t.Fatalf("upper-case hex with another scheme: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	w := Webhooks{Secret: vecSecret}
	body := []byte(vecBody)
	good := "t=" + vecT + ",v1=" + vecSig
	for _, tc := range []struct {
		name, header, secret string
		body                 []byte
	}{
		{"altered body", good, vecSecret, []byte(`{"callback":true,"value":"value-fielD"}`)},
		{"other t", "t=1681235417001,v1=" + vecSig, vecSecret, body},
		{"wrong secret", good, "other", body},
		{"no secret configured", good, "", body},
		{"no header", "", vecSecret, body},
		{"no t", "v1=" + vecSig, vecSecret, body},
		{"no v1", "t=" + vecT, vecSecret, body},
		{"short v1", "t=" + vecT + ",v1=" + vecSig[:62], vecSecret, body},
		{"non-hex v1", "t=" + vecT + ",v1=" + strings.Repeat("z", 64), vecSecret, body},
		{"t not digits", "t=1681235417000x,v1=" + vecSig, vecSecret, body},
		{"t twice", "t=1,t=" + vecT + ",v1=" + vecSig, vecSecret, body},
		{"only another scheme", "t=" + vecT + ",v0=" + vecSig, vecSecret, body},
	} {
		w.Secret = tc.secret
		if _, err := w.Verify(tc.header, tc.body); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", tc.name, err)
		}
	}
}

func TestVerifyMaxAge(t *testing.T) {
	signed := time.UnixMilli(1681235417000)
	hdr := "t=" + vecT + ",v1=" + vecSig
	w := Webhooks{Secret: vecSecret, Now: func() time.Time { return signed.Add(72 * time.Hour) }}
	if _, err := w.Verify(hdr, []byte(vecBody)); err != nil {
		t.Fatalf("no MaxAge (the default) must accept a 3-day-old retry: %v", err)
	}
	w.MaxAge = time.Hour
	if _, err := w.Verify(hdr, []byte(vecBody)); !errors.Is(err, ErrStale) {
		t.Fatalf("MaxAge 1h, 72h old: %v, want ErrStale", err)
	}
	w.Now = func() time.Time { return signed.Add(30 * time.Minute) }
	if _, err := w.Verify(hdr, []byte(vecBody)); err != nil {
		t.Fatalf("within MaxAge: %v", err)
	}
}

func TestParseCallback(t *testing.T) {
	body := []byte(`{"requestId":"r-1","data":[{"id":123,"customer_id":"12345678909","transaction_id":"req-1","amount":"98000.00","status":"paid","type":"payout","payout_status":"success"},{"id":"x","transaction_id":"y","type":"deposit"}]}`)
	w := Webhooks{Secret: "s"}
	h := http.Header{}
	h.Set(HeaderSignature, Sign("s", time.Now(), body))
	cb, err := w.Parse(h, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(cb.Data) != 1 {
		t.Fatalf("kept %d elements, want the payout only", len(cb.Data))
	}
	p := cb.Data[0].Payout()
	if p.ProviderID != "123" || p.ID != "req-1" || p.AmountInCents != 9_800_000 || p.Status != payout.StatusApproved {
		t.Fatalf("mapped %+v", p)
	}
	for _, bad := range []string{`[]`, `{"data":[]}`, `{"data":"x"}`, `{"data":[{"id":"1"}]}`, `{"data":[{"id":"1","transaction_id":"a","amount":"-1"}]}`, `nope`} {
		if _, err := ParseCallback([]byte(bad)); !errors.Is(err, ErrMalformedWebhook) && !errors.Is(err, ErrAmount) {
			t.Errorf("%s: %v, want ErrMalformedWebhook", bad, err)
		}
	}
	// A lone object is read as one element; numbers as amounts.
	one, err := ParseCallback([]byte(`{"data":{"id":"9","transaction_id":"t","amount":2.5,"payout_status":"refunded"}}`))
	if err != nil || one.Data[0].Payout().Status != payout.StatusReturned || one.Data[0].Payout().AmountInCents != 250 {
		t.Fatalf("lone object: %+v %v", one, err)
	}
	if _, err := w.Parse(http.Header{}, body); !errors.Is(err, ErrSignature) {
		t.Fatalf("unsigned: %v", err)
	}
}

func TestMask(t *testing.T) {
	in := `document 12345678909 already used by ana.maria@example.com, phone +57 300 123 4567, code 400`
	got := Mask(in)
	for _, leak := range []string{"12345678909", "ana.maria", "example.com", "300 123", "4567"} {
		if strings.Contains(got, leak) {
			t.Errorf("Mask kept %q: %s", leak, got)
		}
	}
	if !strings.Contains(got, "code 400") {
		t.Errorf("Mask hid a short number: %s", got)
	}
}
