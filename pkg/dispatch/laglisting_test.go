package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// txListingBehind answers the first reads of every GET
// /payouts/{id}/transactions from a server copy behind the write: the
// transaction whose reference is hide is not there yet (the page's total
// says so too). reads counts the listings read.
type txListingBehind struct {
	base   http.RoundTripper
	hide   string
	behind int32 // how many listings are answered without it
	reads  atomic.Int32
}

func (l *txListingBehind) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/payouts/") ||
		!strings.HasSuffix(req.URL.Path, "/transactions") || l.reads.Add(1) > l.behind {
		return resp, err
	}
	return rewriteAnswer(resp, l.withoutHidden)
}

// withoutHidden is the listing page raw without the hidden reference's
// transaction, its total one less.
func (l *txListingBehind) withoutHidden(raw []byte) ([]byte, error) {
	var env struct {
		Data struct {
			Page    int               `json:"page"`
			Limit   int               `json:"limit"`
			Total   int               `json:"total"`
			Pages   int               `json:"pages"`
			Records []json.RawMessage `json:"records"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, err
	}
	kept := env.Data.Records[:0]
	for _, r := range env.Data.Records {
		var tx struct {
			Reference string `json:"reference"`
		}
		if err := json.Unmarshal(r, &tx); err != nil {
			return nil, err
		}
		if tx.Reference == l.hide {
			env.Data.Total--
			continue
		}
		kept = append(kept, r)
	}
	env.Data.Records = kept
	return json.Marshal(env)
}

// Two faults lined up on the listing read after the lookup: a first
// attempt's POST carries both payees and Wompi creates the batch (its
// answer lost, the worker revoked); the next attempt screens payee 0 out
// (its bank left GET /banks: verdict 'x', an earlier POST may have carried
// it), finds the payout by reference, and reads its transactions from a
// server copy behind the write that does not list payee 0 yet. The listing
// waited only for the kept payees, so payee 0, unlisted, got its final
// REJECTED UNKNOWN_BANK_ID while Wompi pays it in that payout: a request
// the marketplace resends under a new requestId, paid twice.
func TestUnbankedPayeeOfAFoundPayoutWaitsForALaggingListing(t *testing.T) {
	t.Parallel()
	// Behind for two reads: the attempt's own re-reads see the payee.
	t.Run("brief lag", func(t *testing.T) { unbankedLagging(t, 2, 1, false) })
	// Behind for longer than one attempt's re-reads: the payout counts two
	// transactions and lists one, so the attempt fails (retried, the
	// record says posted) instead of ending the payee; the next one sees it.
	t.Run("long lag", func(t *testing.T) { unbankedLagging(t, 10, 2, false) })
	// The payout's answers carry no transaction count (totalTransactions is
	// known from an SDK, not from Wompi's own documents): a count of 0 is
	// unknown, not "none", and the short listing is read again.
	t.Run("long lag, no count", func(t *testing.T) { unbankedLagging(t, 10, 2, true) })
}

func unbankedLagging(t *testing.T, behind int32, attempts int, noCount bool) {
	f := newFixture(t, fixtureOpt{partitions: 1})
	b, timing := postAppliedAnswerLost(t, f, "unbanked-lagging")
	dropped := b.Transactions[0].RequestID

	lag := &txListingBehind{base: f.tap, hide: dropped, behind: behind}
	var tr http.RoundTripper = lag
	if noCount {
		tr = noItemCount{base: lag}
	}
	e2 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: simBankless{base: tr}}), wompi.RailConfig{})
	})
	var err error
	for n := 1; n <= attempts; n++ {
		b2 := b
		if err = e2.process(context.Background(), &b2, nil, testLogger()); err == nil {
			break
		}
		t.Logf("attempt %d: %v", n, err)
		f.noneRejectedWhilePaid(t, b, "the listing read behind the write did not show the payee yet")
	}
	if err != nil {
		t.Fatalf("the batch did not end within %d attempts: %v", attempts, err)
	}
	if n := len(f.tap.snapshot()); n != 1 {
		t.Fatalf("%d POSTs, want 1 (the payout is found by reference)", n)
	}
	f.noDoublePayment()
	f.noneRejectedWhilePaid(t, b, "the listing read behind the write did not show the payee yet")
	if lag.reads.Load() <= behind {
		t.Fatalf("%d listings read, the copy behind answered %d: the payee was never listed", lag.reads.Load(), behind)
	}
	idx := byStatus(f.statuses())
	if len(idx[dropped][payout.StatusSubmitted]) == 0 {
		t.Fatalf("request %s, in the payout Wompi holds, never got SUBMITTED", dropped)
	}
	f.checkLifecycles()
}

// noItemCount takes "totalTransactions" out of every JSON answer: a Wompi
// whose payouts carry no transaction count.
type noItemCount struct{ base http.RoundTripper }

func (n noItemCount) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := n.base.RoundTrip(req)
	if err != nil || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return resp, err
	}
	return rewriteAnswer(resp, func(raw []byte) ([]byte, error) {
		var doc any
		if json.Unmarshal(raw, &doc) == nil {
			dropKey(doc, "totalTransactions")
			if out, err := json.Marshal(doc); err == nil {
				raw = out
			}
		}
		return raw, nil
	})
}

// dropKey deletes key from every object in v, at any depth.
func dropKey(v any, key string) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, key)
		for _, e := range x {
			dropKey(e, key)
		}
	case []any:
		for _, e := range x {
			dropKey(e, key)
		}
	}
}
