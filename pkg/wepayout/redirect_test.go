package wepayout_test

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// TestRedirectIsNotFollowed: the payee's PIX key is not sent to wherever a
// redirect points, and the answer is a wrong base URL, never a refusal.
func TestRedirectIsNotFollowed(t *testing.T) {
	railtest.RedirectsNotFollowed(t, nil, func(t *testing.T, base string) (error, error) {
		c, err := wepayout.New(wepayout.Config{BaseURL: base, APIKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		_, create := c.Create(context.Background(), pixRequest("req-1", 100))
		_, read := c.Find(context.Background(), "req-1")
		return create, read
	})
}
