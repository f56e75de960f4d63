package weptest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// clientBody is a create body as the WEpayout client writes it.
func clientBody(t testing.TB) []byte {
	n := json.Number("1001")
	b, err := json.Marshal(wepayout.CreatePaymentRequest{PaymentMethod: "PIX", Currency: "BRL", Country: "BR", Amount: 5034,
		Invoice: "req-1", Beneficiary: wepayout.Beneficiary{Name: "Maria Souza", Document: wepayout.Document{Type: "CPF", Number: "52998224725"}},
		PIX: &wepayout.PIX{Key: "maria.souza00@example.com"}, MerchantID: &n, Description: "test payout",
		NotificationURL: "https://example.com/webhooks/wepayout"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCreateBodyMatchesEncodingJSON: whenever the hand-written reader
// accepts a create's body, json.Unmarshal reads the same createBody from
// it without an error.
func FuzzCreateBodyMatchesEncodingJSON(f *testing.F) {
	f.Add(clientBody(f))
	for _, s := range []string{
		`{"payment_method":"PIX","amount":"50.34","beneficiary":{"name":"A","document":{"type":"CPF","number":"1","x":1}},"pix":{"pix_key":"k"},"purpose":"p","other":[1,{"a":null}]}`,
		`{"amount":50.34,"merchant_id":"7"}`,
		`{"invoice":"a","Invoice":"b"}`,
		`{"invoice":"a","invoice":"b"}`,
		`{"invoice":null}`,
		`{"invoice":"a\nb"}`,
		`{"beneficiary":null}`,
		`{"beneficiary":{"NAME":"x"}}`,
		`{"beneficiary":{"document":{"Number":"x"}}}`,
		`{"pix":{"PIX_KEY":"x","pix_key":"y"}}`,
		`{"amount":{"a":1}}`,
		`{"amount":01}`,
		`{"paymenſ_method":"x"}`,
		`{"invoice":"a"} {}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := readCreateBody(raw)
		if !ok {
			return
		}
		var want createBody
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("ours accepted %q; encoding/json: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("from %q\n ours %s\n json %s", raw, gj, wj)
		}
	})
}

// TestCreateBodyFastPath: the body the client writes takes the
// hand-written path (else the load run measures encoding/json again).
func TestCreateBodyFastPath(t *testing.T) {
	b, ok := readCreateBody(clientBody(t))
	if !ok || b.Invoice != "req-1" || string(b.Amount) != "50.34" || b.PIX == nil || b.PIX.Key != "maria.souza00@example.com" ||
		b.Beneficiary == nil || b.Beneficiary.Document == nil || b.Beneficiary.Document.Number != "52998224725" || string(b.MerchantID) != "1001" {
		t.Fatalf("read %+v, %v", b, ok)
	}
}
