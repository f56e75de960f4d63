package smartfastpay

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzSmartFastPayWebhook feeds arbitrary bodies and signature headers to
// the callback verifier and parser: they never panic; a callback is
// accepted only if its header really carries the HMAC of its own t and
// body under the secret (so a wrong secret refuses it); an accepted one has
// at least one payout with both ids and a non-negative amount; and an error
// is always one of the documented sentinels.
func FuzzSmartFastPayWebhook(f *testing.F) {
	const secret = "sim-webhook-secret"
	body := []byte(`{"requestId":"r-1","data":[{"id":"100001","customer_id":"c","transaction_id":"req-1","amount":"98000.00","status":"paid","type":"payout","payout_status":"success"}]}`)
	f.Add(body, Sign(secret, time.UnixMilli(1681235417000), body))
	f.Add([]byte(`{"callback":true,"value":"value-field"}`), "t=1681235417000,v1=b9ffafcd16416bd11e36f877c2d7ccc71633d174f8245abc49fc2aef7e6633c8")
	f.Add([]byte(`{"data":{"id":1,"transaction_id":"a","amount":2.5,"payout_status":"refunded"}}`), "t=1,v1=00")
	f.Add([]byte(`not json`), "t=,v1=")
	f.Add([]byte(`{"data":[]}`), "v1=zz,t=99999999999999999999")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		w := Webhooks{Secret: secret}
		h := http.Header{}
		h.Set(HeaderSignature, sig)
		cb, err := w.Parse(h, body)
		// Sign the fuzzed body too: a genuine signature must always verify.
		good := http.Header{}
		good.Set(HeaderSignature, Sign(secret, time.UnixMilli(1681235417000), body))
		// With a genuine signature, the parser sees every fuzzed body.
		if cb2, err2 := w.Parse(good, body); errors.Is(err2, ErrSignature) {
			t.Fatalf("a genuine signature does not verify: %v", err2)
		} else if err2 == nil {
			for _, d := range cb2.Data {
				if d.ID == "" || d.TransactionID == "" || d.Amount < 0 {
					t.Fatalf("parsed a bad element %+v", d)
				}
			}
		} else if !errors.Is(err2, ErrMalformedWebhook) && !errors.Is(err2, ErrAmount) {
			t.Fatalf("undocumented error: %v", err2)
		}
		if err != nil {
			if cb != nil {
				t.Fatal("a callback returned with an error")
			}
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrMalformedWebhook) && !errors.Is(err, ErrAmount) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if _, err := (Webhooks{Secret: secret + "x"}).Verify(sig, body); err == nil {
			t.Fatal("accepted under a wrong secret")
		}
		if len(cb.Data) == 0 {
			t.Fatal("accepted with no payout")
		}
		for _, d := range cb.Data {
			if d.ID == "" || d.TransactionID == "" || d.Amount < 0 {
				t.Fatalf("accepted a bad element %+v", d)
			}
		}
	})
}
