package track

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A validly signed transaction.updated without payoutId (unsigned, so
// anyone may leave it out) names no payout to check the transaction
// against: refused as malformed (400), nothing emitted, rather than
// looked up in Wompi under an empty payout id, whose failure would answer
// 503 and have Wompi retry it for days. (An empty transaction or payout
// id is refused earlier: the signature must cover the id.)
func TestSignedWebhookWithoutPayoutIDRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine(nil)
	secret := f.sim.Config().EventsSecret
	c := f.submit(true, f.payee("1234567890"))
	tx := c.txs[0]
	body, sum := txWebhook(t, secret, tx.ID, "", tx.AmountInCents, "APPROVED", nil, t0)
	before := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultMalformed))
	if code := post(t, srv.URL, body, sum); code != 400 {
		t.Fatalf("status %d, want 400", code)
	}
	if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultMalformed)); got != before+1 {
		t.Fatalf("%s metric went %v -> %v", ResultMalformed, before, got)
	}
	if n := len(f.statusEvents()); n != 0 {
		t.Fatalf("%d status events produced by a webhook without payoutId", n)
	}
}
