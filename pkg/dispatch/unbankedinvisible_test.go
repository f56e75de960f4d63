package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// simBankless is bankless with the simulator's own bankId for the bank it
// still lists, so that a POST of a payee of that bank passes validation.
type simBankless struct{ base http.RoundTripper }

func (b simBankless) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/banks") {
		return jsonAnswer(req, http.StatusOK, fmt.Sprintf(`[{"id":%q,"name":"BANCO DE BOGOTA","code":"1001"}]`, wompitest.BankID("1001"))), nil
	}
	return b.base.RoundTrip(req)
}

// refHidden answers every GET /payouts?reference= with an empty listing
// while hide is set: Wompi's read side does not show a payout its write
// side holds (the case the 409 EXC_022 path waits LookupPatience for).
type refHidden struct {
	base http.RoundTripper
	hide *atomic.Bool
}

func (h refHidden) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.hide.Load() && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/payouts") && req.URL.Query().Get("reference") != "" {
		return jsonAnswer(req, http.StatusOK, `{"data":{"page":1,"limit":50,"total":0,"pages":1,"records":[]}}`), nil
	}
	return h.base.RoundTrip(req)
}

// Two faults lined up (from a review of 5375f86): a first attempt's POST
// carries both payees and Wompi creates the batch (its answer lost), and
// Wompi's lookup by reference does not show that payout for longer than
// RecoveryGrace; the next attempt screens payee 0 out (its bank left GET
// /banks: verdict 'x'). Its lookupSettled finds nothing and takes the
// batch as absent, so its POST (without payee 0) meets 409 EXC_022: the
// key is held, by the earlier POST, which carried payee 0. The payout not
// showing within LookupPatience, the batch is deferred PAYOUT_NOT_VISIBLE,
// and payee 0 got its final REJECTED UNKNOWN_BANK_ID (the absence taken as
// proven) for a request Wompi pays.
func TestUnbankedPayeeNotRejectedWhenTheKeyIsHeldByAnInvisiblePayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	b, timing := postAppliedAnswerLost(t, f, "unbanked-invisible")
	dropped := b.Transactions[0].RequestID

	var hide atomic.Bool
	hide.Store(true)
	e2 := f.engine(func(c *Config) {
		timing(c)
		c.LookupPatience = 300 * time.Millisecond
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: simBankless{base: refHidden{base: f.tap, hide: &hide}}}), wompi.RailConfig{})
	})
	b2 := b
	if err := e2.process(context.Background(), &b2, nil, testLogger()); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if n := len(f.tap.snapshot()); n != 2 {
		t.Fatalf("setup: %d POSTs, want 2 (the second answered 409 EXC_022)", n)
	}
	f.noneRejectedWhilePaid(t, b, "Wompi holds the payout under the batch's key (its 409 said so)")
	// The copy, once the payout shows, adopts it: both SUBMITTED.
	hide.Store(false)
	deferred := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	var cp payout.Batch
	if err := f.codec.DecodeBatch(deferred[len(deferred)-1].Value, &cp); err != nil {
		t.Fatal(err)
	}
	if len(cp.Transactions) != 2 {
		t.Fatalf("the deferred copy holds %d payees, want both", len(cp.Transactions))
	}
	e3 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: simBankless{base: f.tap}}), wompi.RailConfig{})
	})
	if err := e3.process(context.Background(), &cp, nil, testLogger()); err != nil {
		t.Fatalf("the copy's attempt: %v", err)
	}
	f.noDoublePayment()
	idx := byStatus(f.statuses())
	if len(idx[dropped][payout.StatusSubmitted]) == 0 {
		t.Fatalf("request %s, in the payout Wompi holds, never got SUBMITTED", dropped)
	}
	f.checkLifecycles()
}
