package dispatch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

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

	tied := &wompitest.TiedPages{Base: f.tap, Hide: dropped, Behind: 30}
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
	if tied.Reads.Load() < tied.Behind {
		t.Fatalf("%d shifted pages of %d: the listing went back to its order too early", tied.Reads.Load(), tied.Behind)
	}
	f.noDoublePayment()
	if len(byStatus(f.statuses())[dropped][payout.StatusSubmitted]) == 0 {
		t.Fatalf("request %s, in the payout Wompi holds, never got SUBMITTED", dropped)
	}
	f.checkLifecycles()
}

// rewriteAnswer gives resp the body edit makes of the one the server sent,
// and that body's length (the Content-Length the server sent is of the body
// before): the answer a test's transport rewrites.
func rewriteAnswer(resp *http.Response, edit func(body []byte) ([]byte, error)) (*http.Response, error) {
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	out, err := edit(raw)
	if err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(out)), int64(len(out))
	resp.Header.Del("Content-Length")
	return resp, nil
}
