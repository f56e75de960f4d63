package wompi_test

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// TestRedirectIsNotFollowed: the batch's body is not sent to wherever a
// redirect points, and the answer is a wrong base URL.
func TestRedirectIsNotFollowed(t *testing.T) {
	railtest.RedirectsNotFollowed(t, nil, func(t *testing.T, base string) (error, error) {
		c, err := wompi.New(wompi.Config{BaseURL: base + "/v1", APIKey: "k", PrincipalID: "p"})
		if err != nil {
			t.Fatal(err)
		}
		_, create := c.CreatePayout(context.Background(), "k-1", batch("b-1", tx("r-1", "1234567890", 150_000)))
		_, read := c.Limits(context.Background())
		return create, read
	})
}
