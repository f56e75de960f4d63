package wepayout_test

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// Valid documents (check digits computed, not real people).
const (
	testCPF  = "52998224725"
	testCNPJ = "11222333000181"
)

// pixRequest is a valid PIX payout; its key's last digits pick the
// simulator's outcome ("…00": paid).
func pixRequest(id string, cents int64) rail.PayoutRequest {
	return rail.PayoutRequest{ID: id, AmountInCents: cents, Currency: "BRL", Description: "test payout",
		Payee: rail.Payee{Name: "Maria Souza", LegalIDType: "CPF", LegalID: testCPF, PixKey: "maria.souza00@example.com"}}
}

func bankRequest(id string, cents int64, account string) rail.PayoutRequest {
	return rail.PayoutRequest{ID: id, AmountInCents: cents, Currency: "BRL",
		Payee: rail.Payee{Name: "Loja Exemplo Ltda", LegalIDType: "CNPJ", LegalID: testCNPJ, BankCode: "001", Branch: "1234",
			AccountNumber: account, AccountDigit: "9", AccountType: "CORRIENTE"}}
}

// newSim starts a simulator on a manual clock and a client wired to it.
func newSim(t *testing.T, cfg weptest.Config, ccfg wepayout.Config) (*weptest.Server, *wepayout.Client, *weptest.ManualClock) {
	t.Helper()
	clk := weptest.NewManualClock(time.Now())
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	sim := weptest.NewTestServer(t, cfg)
	return sim, sim.Client(ccfg), clk
}
