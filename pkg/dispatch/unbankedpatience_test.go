package dispatch

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// lookupDown fails every GET /payouts (the lookup by reference) with a
// 503: Wompi's read side is down while its write side applied a POST.
type lookupDown struct{ base http.RoundTripper }

func (l lookupDown) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/payouts") {
		return jsonAnswer(req, http.StatusServiceUnavailable, `{"status":503,"code":"SERVICE_UNAVAILABLE","message":"injected"}`), nil
	}
	return l.base.RoundTrip(req)
}

// The pair left open by verdict 'x': an earlier attempt's POST carried
// the payee and Wompi created the batch (its answer lost), and the next
// attempt screens the payee out (its bank left GET /banks) while Wompi's
// lookups fail past RailPatience. The reconcile never proved the batch
// absent, yet the deferral (wompiUnavailable -> deferBatch) emits the
// payee's final REJECTED UNKNOWN_BANK_ID, and its deferred copy leaves it
// out: Wompi pays a request the status topic says is REJECTED.
func TestUnbankedPayeeNotRejectedWhenLookupRunsOutOfPatience(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b, timing := postAppliedAnswerLost(t, f, "unbankedpat")

	e2 := f.engine(func(c *Config) {
		timing(c)
		c.RailPatience = 300 * time.Millisecond
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: bankless{base: lookupDown{base: f.tap}}}), wompi.RailConfig{})
	})
	b2 := b
	if err := e2.process(context.Background(), &b2, nil, testLogger()); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	f.noneRejectedWhilePaid(t, b, "its drop was taken while every lookup failed (deferred RAIL_UNAVAILABLE)")
	// The copy carries the payee, and its attempt (Wompi answering again,
	// the bank still unknown) finds the batch and SUBMITs it.
	deferred := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	if len(deferred) != 1 {
		t.Fatalf("%d deferred copies, want 1", len(deferred))
	}
	var cp payout.Batch
	if err := f.codec.DecodeBatch(deferred[0].Value, &cp); err != nil {
		t.Fatal(err)
	}
	if len(cp.Transactions) != 2 {
		t.Fatalf("the deferred copy holds %d payees, want both (the unbanked one may be in Wompi)", len(cp.Transactions))
	}
	e3 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: bankless{base: f.tap}}), wompi.RailConfig{})
	})
	if err := e3.process(context.Background(), &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy's attempt: %v", err)
	}
	f.noDoublePayment()
	idx := byStatus(f.statuses())
	if len(idx[b.Transactions[0].RequestID][payout.StatusSubmitted]) == 0 {
		t.Fatalf("request %s, in the batch Wompi holds, never got SUBMITTED", b.Transactions[0].RequestID)
	}
	f.checkLifecycles()
}

// postAppliedAnswerLost runs a first attempt at a Wompi batch of two payees
// (payee 1's bank, 1001, always listed) whose POST Wompi applies but whose
// answer never comes, its worker revoked meanwhile (the record stays
// "posting"). It returns the batch and the timing its attempts use.
func postAppliedAnswerLost(t *testing.T, f *fixture, name string) (payout.Batch, func(*Config)) {
	t.Helper()
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return faultCommitTimeout // Wompi creates the batch; the answer never comes
		}
		return faultNone
	}
	timing := func(c *Config) { c.HTTPTimeout = 500 * time.Millisecond }
	b := simpleBatch(name, 2)
	b.Transactions[1].Beneficiary.BankCode = "1001" // still listed
	revokedWhileSending(t, f.engine(timing), b)
	if le, ok := f.sim.LedgerEntry(b.Transactions[1].RequestID); !ok || le.Accepted == 0 {
		t.Fatal("setup: the first POST did not reach Wompi")
	}
	return b, timing
}
