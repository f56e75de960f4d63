package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// ForgeProbes sends the tracker, through its load balancer, webhooks an
// attacker holding one genuine event could forge (issue #15): a genuine
// transaction event of transaction a with case-variant "ID"/"Status" keys
// appended that name transaction b as CANCELLED, the same event relabelled
// payout.updated, and a signature that does not cover the amount. Each must
// be answered 401; the oracle then checks that nothing they name reached
// the status topic (b's final status must still be Wompi's). It returns how
// many probes were refused and a problem for each that was not.
func (c *Cluster) ForgeProbes(ctx context.Context, a, b ForgeTarget) (refused int, problems []string) {
	at := time.Now()
	data := map[string]any{"transaction": map[string]any{"id": a.TransactionID, "payoutId": a.PayoutID,
		"amountInCents": a.AmountInCents, "status": "FAILED"}}
	props := []string{"transaction.id", "transaction.status", "transaction.amountInCents"}
	genuine, _, err := wompi.SignEvent("transaction.updated", data, props, at, EventsSecret)
	if err != nil {
		return 0, []string{"forge: " + err.Error()}
	}
	// 1. Case-variant keys appended inside the signed transaction.
	inject := []byte(fmt.Sprintf(`,"ID":%q,"Status":"CANCELLED"}`, b.TransactionID))
	caseVariant := bytes.Replace(genuine, []byte(`"status":"FAILED"}`), append([]byte(`"status":"FAILED"`), inject...), 1)
	// 2. The same signed data relabelled as a payout event.
	relabelled := bytes.Replace(genuine, []byte(`"transaction.updated"`), []byte(`"payout.updated"`), 1)
	// 3. A signature over id and status only, for b: the amount unsigned.
	weak, _, err := wompi.SignEvent("transaction.updated", map[string]any{"transaction": map[string]any{"id": b.TransactionID,
		"payoutId": b.PayoutID, "amountInCents": b.AmountInCents, "status": "CANCELLED"}},
		[]string{"transaction.id", "transaction.status"}, at, EventsSecret)
	if err != nil {
		return 0, []string{"forge: " + err.Error()}
	}
	for name, body := range map[string][]byte{"case-variant keys": caseVariant, "relabelled event": relabelled, "amount unsigned": weak} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.LBAddr+"/webhooks/wompi", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			problems = append(problems, fmt.Sprintf("forged webhook (%s): %v", name, err))
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			problems = append(problems, fmt.Sprintf("forged webhook (%s) answered %d, want 401", name, resp.StatusCode))
			continue
		}
		refused++
	}
	return refused, problems
}

// ForgeTarget is a transaction the forged webhooks name.
type ForgeTarget struct {
	TransactionID, PayoutID string
	AmountInCents           int64
}
