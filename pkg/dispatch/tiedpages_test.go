package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// tiedPages answers the first reads of GET /payouts/{id}/transactions
// that would list the transaction whose reference is hide as offset
// pagination does over a sort key the payout's transactions tie on (all of
// a batch's transactions share one createdAt) when the ties come back in
// another order from one query to the next: the first page is read with
// hide last, the later pages with hide first. The listing then yields one
// transaction twice and never yields hide, with the page count and total
// unchanged. reads counts the pages so answered.
type tiedPages struct {
	base   http.RoundTripper
	hide   string
	behind int32 // how many such pages are answered shifted
	reads  atomic.Int32
}

type txPage struct {
	Data struct {
		Page    int               `json:"page"`
		Limit   int               `json:"limit"`
		Total   int               `json:"total"`
		Pages   int               `json:"pages"`
		Records []json.RawMessage `json:"records"`
	} `json:"data"`
}

func (p *tiedPages) get(req *http.Request, page int) (*http.Response, txPage, error) {
	q := req.URL.Query()
	q.Set("page", strconv.Itoa(page))
	r := req.Clone(req.Context())
	r.URL.RawQuery = q.Encode()
	resp, err := p.base.RoundTrip(r)
	if err != nil {
		return nil, txPage{}, err
	}
	raw, err := readAllClose(resp)
	if err != nil {
		return nil, txPage{}, err
	}
	var env txPage
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, txPage{}, err
	}
	return resp, env, nil
}

func (p *tiedPages) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/payouts/") || !strings.HasSuffix(req.URL.Path, "/transactions") ||
		p.reads.Load() >= p.behind {
		return p.base.RoundTrip(req)
	}
	page, _ := strconv.Atoi(req.URL.Query().Get("page"))
	page = max(page, 1)
	// Every transaction, in the order of the write.
	resp, first, err := p.get(req, 1)
	if err != nil {
		return nil, err
	}
	all := first.Data.Records
	for n := 2; n <= first.Data.Pages; n++ {
		_, env, err := p.get(req, n)
		if err != nil {
			return nil, err
		}
		all = append(all, env.Data.Records...)
	}
	var others []json.RawMessage
	var hidden json.RawMessage
	for _, r := range all {
		if strings.Contains(string(r), `"reference":"`+p.hide+`"`) {
			hidden = r
		} else {
			others = append(others, r)
		}
	}
	order := append(append([]json.RawMessage(nil), others...), hidden) // hide last
	if page > 1 {
		order = append([]json.RawMessage{hidden}, others...) // hide first
	}
	if hidden == nil {
		return p.base.RoundTrip(req) // hide is not in the payout
	}
	p.reads.Add(1)
	out := first
	out.Data.Page = page
	from := min((page-1)*first.Data.Limit, len(order))
	out.Data.Records = order[from:min(from+first.Data.Limit, len(order))]
	raw, _ := json.Marshal(out)
	return rebody(resp, raw), nil
}

// Two faults on the path of e640ec3 and ce7699c: a first attempt's POST
// carries every payee and Wompi creates the batch (its answer lost); the
// next attempt screens payee 0 out (its bank left GET /banks: verdict 'x')
// and finds the payout by reference; its transactions listing, read in
// pages (1,000 a page: the batch holds 1,001 payees), repeats one
// transaction where payee 0 would be, as offset pages over tied sort keys
// do. unbankedListed takes a listing as the payout's word when it holds as
// many transactions as the payout counts (totalTransactions): it counted
// 1,001 records, one of them twice, and ended payee 0 REJECTED
// UNKNOWN_BANK_ID while Wompi pays it.
func TestUnbankedPayeeNotRejectedWhenTheListingRepeatsATransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	f.tap.fault = func(n int) fault {
		if n == 1 {
			return faultCommitTimeout // Wompi creates the batch; the answer never comes
		}
		return faultNone
	}
	timing := func(c *Config) { c.HTTPTimeout = 2 * time.Second }
	b := simpleBatch("unbanked-tied", 1001)
	for i := 1; i < len(b.Transactions); i++ {
		b.Transactions[i].Beneficiary.BankCode = "1001" // still listed
	}
	revokedWhileSending(t, f.engine(timing), b)
	if le, ok := f.sim.LedgerEntry(b.Transactions[0].RequestID); !ok || le.Accepted == 0 {
		t.Fatal("setup: the first POST did not reach Wompi")
	}
	dropped := b.Transactions[0].RequestID

	tied := &tiedPages{base: f.tap, hide: dropped, behind: 30}
	e2 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: simBankless{base: tied}}), wompi.RailConfig{})
	})
	var err error
	for n := 1; n <= 6; n++ {
		b2 := b
		err = e2.process(context.Background(), &b2, nil, testLogger())
		f.noneRejectedWhilePaid(t, b, "its listing repeated another transaction in its place, and was counted as complete")
		if err == nil {
			break
		}
		t.Logf("attempt %d: %v", n, err)
	}
	if err != nil {
		t.Fatalf("the batch did not end: %v", err)
	}
	if tied.reads.Load() < tied.behind {
		t.Fatalf("%d shifted pages of %d: the listing went back to its order too early", tied.reads.Load(), tied.behind)
	}
	f.noDoublePayment()
	if len(byStatus(f.statuses())[dropped][payout.StatusSubmitted]) == 0 {
		t.Fatalf("request %s, in the payout Wompi holds, never got SUBMITTED", dropped)
	}
	f.checkLifecycles()
}

func readAllClose(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// rebody gives resp the body raw.
func rebody(resp *http.Response, raw []byte) *http.Response {
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	resp.Header.Del("Content-Length")
	return resp
}
