package wompi_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// contractSuite is the conformance suite run against both the simulator
// and the real sandbox: the shapes and behaviours the pipeline relies on.
func contractSuite(t *testing.T, c *wompi.Client, settle func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	banks, err := c.Banks(ctx)
	if err != nil || len(banks) == 0 {
		t.Fatalf("banks: %d %v", len(banks), err)
	}
	var bankID string
	for _, b := range banks {
		if b.Code == "1007" {
			bankID = b.ID
		}
	}
	if bankID == "" {
		t.Fatal("no BANCOLOMBIA (1007) in /banks")
	}
	accts, err := c.Accounts(ctx, wompi.AccountsFilter{Status: wompi.AccountActive})
	if err != nil || len(accts) == 0 {
		t.Fatalf("accounts: %v %v", accts, err)
	}
	if _, err := c.Limits(ctx); err != nil {
		t.Fatalf("limits: %v", err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status == "" {
		t.Fatalf("health: %+v %v", h, err)
	}
	ref := fmt.Sprintf("contract-%d", time.Now().UnixNano())
	req := &wompi.CreatePayoutRequest{Reference: ref, AccountID: accts[0].ID, PaymentType: wompi.PaymentTypeOther,
		TransactionStatus: "APPROVED", Transactions: []wompi.TransactionRequest{{LegalIDType: "CC", LegalID: "1000000000",
			BankID: bankID, AccountType: "AHORROS", AccountNumber: "1234567890", Name: "Contract Test", Email: "contract@example.co",
			Amount: 100_000, Reference: ref + "-1"}}}
	res, err := c.CreatePayout(ctx, ref, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.CreatePayout(ctx, ref, req); !wompi.IsCode(err, wompi.CodeIdempotencyReused) {
		t.Errorf("same key: want EXC_022, got %v", err)
	}
	found, err := c.FindPayoutsByReference(ctx, ref)
	if err != nil || len(found) != 1 || found[0].ID != res.PayoutID {
		t.Fatalf("find by reference: %+v %v", found, err)
	}
	settle()
	var txs []wompi.Transaction
	for tx, err := range c.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	if len(txs) != 1 || txs[0].Reference != ref+"-1" || txs[0].ID == "" {
		t.Fatalf("transactions: %+v", txs)
	}
}

func TestSimulatorContract(t *testing.T) {
	sim, c, _ := newSim(t, wompitest.Config{})
	contractSuite(t, c, func() { sim.SettleAll() })
}

// TestSandboxContract runs the same suite against Wompi's real sandbox.
func TestSandboxContract(t *testing.T) {
	key, principal := os.Getenv("WOMPI_SANDBOX_API_KEY"), os.Getenv("WOMPI_SANDBOX_PRINCIPAL_ID")
	if key == "" || principal == "" {
		t.Skip("set WOMPI_SANDBOX_API_KEY and WOMPI_SANDBOX_PRINCIPAL_ID to run the contract suite against the real sandbox")
	}
	c, err := wompi.New(wompi.Config{BaseURL: wompi.SandboxBaseURL, APIKey: key, PrincipalID: principal})
	if err != nil {
		t.Fatal(err)
	}
	contractSuite(t, c, func() {})
}
