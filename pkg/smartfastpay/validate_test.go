package smartfastpay

import (
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

func TestValidate(t *testing.T) {
	good := rail.Payee{Name: "Ana Gómez", Email: "ana@example.com", Phone: "573001234567", LegalID: "12345678909"}
	if vs := Validate("COP", 200, good); vs != nil {
		t.Fatalf("valid payout refused: %v", vs.Message())
	}
	cases := []struct {
		name     string
		currency string
		cents    int64
		mut      func(*rail.Payee)
		want     payout.Reason
	}{
		{"currency", "BRL", 200, nil, ReasonInvalidCurrency},
		{"under the minimum", "COP", 199, nil, ReasonInvalidAmount},
		{"over decimal(10,2)", "COP", MaxAmountInCents + 1, nil, ReasonInvalidAmount},
		{"document length", "COP", 200, func(p *rail.Payee) { p.LegalID = "1234567890" }, ReasonInvalidDocument},
		{"document letters", "COP", 200, func(p *rail.Payee) { p.LegalID = "1234567890a" }, ReasonInvalidDocument},
		{"phone prefix", "COP", 200, func(p *rail.Payee) { p.Phone = "553001234567" }, ReasonInvalidPhone},
		{"phone length", "COP", 200, func(p *rail.Payee) { p.Phone = "5730012345" }, ReasonInvalidPhone},
		{"no phone", "COP", 200, func(p *rail.Payee) { p.Phone = "" }, ReasonInvalidPhone},
		{"name", "COP", 200, func(p *rail.Payee) { p.Name = "Al" }, ReasonInvalidName},
		// 150 characters once trimmed, 151 as sent: the rail refused it
		// with a 400 after ingest had batched it.
		{"name over 150 with its spaces", "COP", 200, func(p *rail.Payee) { p.Name = strings.Repeat("a", 150) + " " }, ReasonInvalidName},
		{"email", "COP", 200, func(p *rail.Payee) { p.Email = "ana" }, ReasonInvalidEmail},
	}
	for _, c := range cases {
		p := good
		if c.mut != nil {
			c.mut(&p)
		}
		vs := Validate(c.currency, c.cents, p)
		if vs.Reason() != c.want {
			t.Errorf("%s: %v, want %s", c.name, vs, c.want)
		}
		for _, pii := range []string{p.LegalID, p.Phone, p.Email} {
			if pii != "" && len(pii) > 3 && strings.Contains(vs.Message(), pii) {
				t.Errorf("%s: message %q carries personal data", c.name, vs.Message())
			}
		}
	}
}
