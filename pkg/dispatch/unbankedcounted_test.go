package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// refusedAtCreation is Wompi refusing one payee of a POST /payouts at
// creation (its bank is leaving the directory): the batch is created
// without it, and the payout's totalTransactions (GET /payouts?reference=
// and GET /payouts/{id}) still counts it, as the create answer's "failed"
// count does [sdk]; its transactions listing never shows it (the case
// pkg/track's TestFinalBatchCountedDifferentlyLeavesTheSchedule handles).
type refusedAtCreation struct {
	base http.RoundTripper
	ref  string
}

func (r refusedAtCreation) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/payouts") && req.Body != nil {
		raw, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, err
		}
		var txs []map[string]any
		if err := json.Unmarshal(body["transactions"], &txs); err != nil {
			return nil, err
		}
		kept := txs[:0]
		for _, tx := range txs {
			if tx["reference"] != r.ref {
				kept = append(kept, tx)
			}
		}
		body["transactions"], _ = json.Marshal(kept)
		out, _ := json.Marshal(body)
		req = req.Clone(req.Context())
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(out)), int64(len(out))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out)), nil }
		return r.base.RoundTrip(req)
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/payouts") ||
		strings.HasSuffix(req.URL.Path, "/transactions") {
		return resp, err
	}
	return rewriteAnswer(resp, func(raw []byte) ([]byte, error) {
		return bytes.ReplaceAll(raw, []byte(`"totalTransactions":1`), []byte(`"totalTransactions":2`)), nil
	})
}

// Two faults on the path of e640ec3: a POST whose answer is lost, in which
// Wompi refused payee 0 at creation (its bank leaving the directory; the
// payout counts it and never lists it), and the next attempt screening
// payee 0 out for its bank. The payout's count stays above its listing for
// good, so unbankedListed failed every attempt: the batch was retried for
// ever, its partition held, payee 1 (paid) never SUBMITTED and payee 0
// never ended. Now the listing of a final payout still short after the
// tracker's own patience (track.ShortListingPatience) is taken as the
// payout's word, as the tracker's poll takes it.
func TestUnbankedPayeeRefusedAtCreationDoesNotHoldThePartition(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	const name = "unbanked-counted"
	refused := name + "-0"
	f.tap.base = refusedAtCreation{base: http.DefaultTransport, ref: refused}
	b, timing := postAppliedAnswerLost(t, f, name)
	if le, ok := f.sim.LedgerEntry(refused); ok && le.Accepted != 0 {
		t.Fatal("setup: Wompi accepted the payee it should have refused at creation")
	}
	e2 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: simBankless{base: f.tap}}), wompi.RailConfig{})
	})
	b2 := b
	if err := e2.process(context.Background(), &b2, nil, testLogger()); err == nil {
		t.Fatal("the first attempt after the lost answer ended the batch: the listing may still be behind")
	}
	f.noneRejectedWhilePaid(t, b, "the listing may be behind")
	// The payout settles; the listing is as short as ever, the tracker's
	// patience with it long past.
	f.sim.Advance(73 * time.Hour)
	f.processUntilEnded(e2, b, 3) // else its partition is held for good
	f.noDoublePayment()
	f.noneRejectedWhilePaid(t, b, "")
	idx := byStatus(f.statuses())
	if len(idx[b.Transactions[1].RequestID][payout.StatusSubmitted]) != 1 {
		t.Fatalf("request %s, paid in the payout, has no SUBMITTED", b.Transactions[1].RequestID)
	}
	if r := idx[refused][payout.StatusRejected]; len(r) != 1 || deref(r[0].ReasonCode) != string(payout.ReasonUnknownBankID) {
		t.Fatalf("request %s, refused at creation and unbanked: REJECTED %+v, want one UNKNOWN_BANK_ID", refused, r)
	}
	f.checkLifecycles()
}
