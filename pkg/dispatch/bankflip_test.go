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
		return jsonAnswer(req, http.StatusOK,
			`[{"id":"8b3c1f6e-0000-4000-8000-000000001001","name":"BANCO DE BOGOTA","code":"1001"}]`), nil
	}
	return b.base.RoundTrip(req)
}

// jsonAnswer is a provider's answer to req, made up by a test's transport:
// code with body as JSON. It closes req's body, as a transport must.
func jsonAnswer(req *http.Request, code int, body string) *http.Response {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: req}
}

// revokedWhileSending runs a first attempt at b whose POST goes out and
// whose worker is revoked meanwhile (the record stays "posting"): it must
// end with an error.
func revokedWhileSending(t *testing.T, e *Engine, b payout.Batch) {
	t.Helper()
	ctx, revoke := context.WithCancel(context.Background())
	defer revoke()
	e.whileSending = func(string) { revoke() }
	if err := e.process(ctx, &b, nil, testLogger()); err == nil {
		t.Fatal("the revoked attempt returned no error")
	}
}

// noneRejectedWhilePaid fails when a request of b that Wompi holds in a
// batch has a REJECTED on the status topic (why: how it came to be), and
// when Wompi holds none of them: the fault it is about never happened, and
// the check would pass on anything.
func (f *fixture) noneRejectedWhilePaid(t *testing.T, b payout.Batch, why string) {
	t.Helper()
	idx := byStatus(f.statuses())
	held := 0
	for _, tx := range b.Transactions {
		le, ok := f.sim.LedgerEntry(tx.RequestID)
		if !ok || le.Accepted == 0 {
			continue
		}
		held++
		if r := idx[tx.RequestID][payout.StatusRejected]; len(r) > 0 {
			t.Fatalf("request %s is in a batch Wompi holds, yet REJECTED %s: %s", tx.RequestID, deref(r[0].ReasonCode), why)
		}
	}
	if held == 0 {
		t.Fatalf("Wompi holds no request of batch %s: the POST that should have landed did not, and nothing was checked", b.BatchID)
	}
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
	t.Parallel()
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
	revokedWhileSending(t, e1, b)

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
	f.noneRejectedWhilePaid(t, b, "the drop was taken on a lookup that ran before an earlier POST (applied late) could land")
	f.checkLifecycles()
}
