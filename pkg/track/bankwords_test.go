package track

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// TestPolledBankMessageIsMaskedAndBounded: the bank's words on a FAILED
// transaction quote the payee's account number and email, and run past
// the status topic's max.message.bytes (a provider's bug: Wompi's answers
// may be 64 MiB). The poll still emits FAILED with the bank's code, and
// its reasonMessage holds neither the account number nor the email and
// is a few hundred bytes: an event the topic refuses would never be
// written (every poll failing on it, every webhook answered 503), and the
// payee would never get a final status.
func TestPolledBankMessageIsMaskedAndBounded(t *testing.T) {
	const account = "1234567007"
	msg := "Account number " + account + " of ana@example.co does not exist; " + strings.Repeat("detail ", 200_000)
	f := newFixture(t, fixtureOpts{sim: wompitest.Config{Faults: wompitest.Faults{WebhookDropRate: 1},
		FailureRules: []wompitest.FailureRule{{Suffix: "007", Code: "D07", Message: msg}}}})
	e, srv := f.engine(func(c *Config) { c.ProduceTimeout = 3 * time.Second })
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	ctx := context.Background()
	c := f.submit(true, f.payee(account))
	f.sim.SettleAll()
	f.waitHooks()
	// Without the bound every poll fails the same way (MESSAGE_TOO_LARGE)
	// and the payout stays scheduled for ever.
	if res, err := e.PollOnce(ctx); err != nil || res.Errors != 0 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	got := transitions(f.statusEvents())[c.txs[0].Reference+"/"+string(payout.StatusFailed)]
	if len(got) != 1 {
		t.Fatalf("FAILED events: %+v, want one", len(got))
	}
	rm := deref(got[0].ReasonMessage)
	if deref(got[0].ReasonCode) != "D07" || !strings.Contains(rm, "does not exist") {
		t.Fatalf("reason %q %q", deref(got[0].ReasonCode), rm)
	}
	if strings.Contains(rm, account) || strings.Contains(rm, "ana@example.co") || len(rm) > 1000 {
		t.Fatalf("reasonMessage (%d bytes) carries the payee's data or is unbounded: %.200q", len(rm), rm)
	}
}
