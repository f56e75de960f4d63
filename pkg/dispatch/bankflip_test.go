package dispatch

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// bankless answers GET /banks with a table that no longer lists
// Bancolombia (1007): Wompi dropped the bank, or answered a partial list.
type bankless struct{ base http.RoundTripper }

func (b bankless) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/banks") {
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(
				`[{"id":"8b3c1f6e-0000-4000-8000-000000001001","name":"BANCO DE BOGOTA","code":"1001"}]`)),
			Request: req}, nil
	}
	return b.base.RoundTrip(req)
}

// Two faults lined up: a POST whose answer is lost and that Wompi applies
// late (after its client gave up, within RecoveryGrace of its start), and
// a rebalance right after it; the replica that takes the batch over reads
// a bank table that no longer knows the payees' bank code. Screening then
// drops every payee (UNKNOWN_BANK_ID), and the batch is ended with
// REJECTED on a lookup that ran before the first POST could land: Wompi
// then pays requests the status topic says are REJECTED (final), which a
// marketplace resends under a new requestId: paid twice.
func TestLateAppliedPostThenBankDroppedFromDirectory(t *testing.T) {
	t.Run("every payee dropped", func(t *testing.T) { lateThenUnbanked(t, false) })
	// One payee dropped, the other kept but deferred (the day's budget):
	// the dropped one's REJECTED goes out with the DEFERRED.
	t.Run("one payee dropped, the rest deferred", func(t *testing.T) { lateThenUnbanked(t, true) })
}

func lateThenUnbanked(t *testing.T, partial bool) {
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.lateBy, f.tap.late = time.Second, make(chan struct{})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return faultLateApply
		}
		return faultNone
	}
	timing := func(c *Config) { c.HTTPTimeout = 500 * time.Millisecond }
	e1 := f.engine(timing)
	b := simpleBatch("bankflip", 2)
	if partial {
		b.Transactions[1].Beneficiary.BankCode = "1001" // still listed
	}

	// The first attempt: its POST goes out, its answer is lost, and its
	// worker is revoked meanwhile (the record stays "posting").
	ctx1, revoke := context.WithCancel(context.Background())
	e1.whileSending = func(string) { revoke() }
	b1 := b
	if err := e1.process(ctx1, &b1, nil, testLogger()); err == nil {
		t.Fatal("the revoked attempt returned no error")
	}

	// The next owner, at once, with a bank table that lacks 1007.
	e2 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: bankless{base: f.tap}}), wompi.RailConfig{})
		if partial {
			c.DailyLimitCents = 50_000 // the kept payee waits for the next day
		}
	})
	b2 := b
	if err := e2.process(context.Background(), &b2, nil, testLogger()); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	select {
	case <-f.tap.late:
	case <-time.After(10 * time.Second):
		t.Fatal("the late POST never reached Wompi")
	}
	f.noDoublePayment()
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		le, ok := f.sim.LedgerEntry(tx.RequestID)
		if !ok || le.Accepted == 0 {
			continue
		}
		if r := idx[tx.RequestID][payout.StatusRejected]; len(r) > 0 {
			t.Fatalf("request %s is paid by Wompi (payout created by the late POST), yet REJECTED %s: the drop was taken on a lookup that ran before an earlier POST could land",
				tx.RequestID, deref(r[0].ReasonCode))
		}
	}
	f.checkLifecycles()
}
