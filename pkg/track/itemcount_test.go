package track

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// countsOneMore answers GET /payouts/{id} with totalTransactions one above
// what the transactions listing holds: Wompi counting a transaction it
// never lists (one refused at creation: the create answer's "failed"
// count [sdk]), which the listing's own total and pages agree on.
type countsOneMore struct{}

func (countsOneMore) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	p := req.URL.Path
	if err != nil || req.Method != http.MethodGet || !strings.Contains(p, "/payouts/") || strings.Contains(p, "/transactions") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte(`"totalTransactions":2`), []byte(`"totalTransactions":3`))
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// The other side of TestShortTransactionListingDoesNotEndThePoll: a batch
// that is final (TOTAL_PAYMENT: every transaction is final [doc]), whose
// every listed transaction is final and emitted, and whose
// totalTransactions counts one more than Wompi ever lists. The poll keeps
// it scheduled at every poll, forever: nothing ever takes it off the
// schedule, and the tracker polls it (and its listing) for as long as it
// runs.
func TestFinalBatchCountedDifferentlyLeavesTheSchedule(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	wc, err := wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: countsOneMore{}}})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.engine(func(c *Config) { c.Wompi = f.rail(wc, f.sim.Config().EventsSecret) })
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"))
	f.sim.Advance(5 * time.Second) // every transaction and the batch settle
	ctx := context.Background()
	if p, err := f.wompi.Payout(ctx, c.payoutID); err != nil || p.Status != wompi.BatchStatus(payout.BatchTotalPayment) {
		t.Fatalf("batch at Wompi: %+v %v", p, err)
	}
	done := 0
	for range 30 * 24 * 2 { // 30 days of polls, at most every PollMaxBackoff (30 min)
		f.clock.Advance(e.cfg.PollMaxBackoff)
		res, err := e.PollOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done += res.Done
		if done > 0 {
			break
		}
	}
	evs := f.statusEvents()
	for _, tx := range c.txs {
		if got := statusesOf(evs, tx.Reference); len(got) == 0 || !got[len(got)-1].Final() {
			t.Errorf("%s: statuses %v: the final status was not emitted", tx.Reference, got)
		}
	}
	if done == 0 {
		t.Fatalf("a TOTAL_PAYMENT batch whose every listed transaction is final and emitted was still polled after 30 days: Wompi's totalTransactions counts one it never lists, and the short-listing check keeps it scheduled forever")
	}
}
