package smartfastpay_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// TestRedirectIsNotFollowed: the payee's data is not sent to wherever a
// redirect points, and the answer is a wrong base URL, never a refusal.
func TestRedirectIsNotFollowed(t *testing.T) {
	token := map[string]http.HandlerFunc{sfp.PathToken: func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"requestId":"r","data":{"access_token":"tok","token_type":"Bearer","expires_in":3600}}`)
	}}
	const cb = "https://example.com/webhooks/smartfastpay"
	railtest.RedirectsNotFollowed(t, token, func(t *testing.T, base string) (error, error) {
		c, err := sfp.New(sfp.Config{BaseURL: base, ClientID: "i", ClientSecret: "s", CallbackURL: cb})
		if err != nil {
			t.Fatal(err)
		}
		_, create := c.Create(context.Background(), validRequest(cb)("req-1", 5000))
		_, read := c.Find(context.Background(), "req-1")
		return create, read
	})
}
