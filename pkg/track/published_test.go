package track

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// unpublishedProxy serves the simulator's API without the fields Wompi
// does not publish for a payout or a transaction (accountId, and payoutId
// on a transaction: shared/wompi-api.md [sdk] shapes), so the tracker is
// tested against the published shapes only.
func unpublishedProxy(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, u.Path+"/payouts") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var v any
		if json.Unmarshal(b, &v) == nil {
			strip(v)
			b, _ = json.Marshal(v)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

func strip(v any) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "accountId")
		delete(x, "payoutId")
		for _, c := range x {
			strip(c)
		}
	case []any:
		for _, c := range x {
			strip(c)
		}
	}
}

// Issue 17 item 1 (second bullet): with no hand-off in Redis and a Wompi
// that sends only its published shapes, the tracker still maps webhooks
// and polls to our requests and batches; the origin account, which only
// our hand-off knows, is then empty rather than guessed.
func TestTrackerNeedsOnlyPublishedFields(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	base := unpublishedProxy(t, f.sim.BaseURL())
	wc, err := wompi.New(wompi.Config{BaseURL: base, APIKey: f.sim.Config().APIKey, PrincipalID: f.sim.Config().PrincipalID})
	if err != nil {
		t.Fatal(err)
	}
	e, srv := f.engine(func(c *Config) { c.Wompi = f.rail(wc, f.sim.Config().EventsSecret) })
	secret := f.sim.Config().EventsSecret
	ctx := context.Background()
	if p, err := wc.Payout(ctx, f.submit(false, f.payee("1234567899")).payoutID); err != nil || p.AccountID != "" {
		t.Fatalf("the proxy let accountId through: %+v %v", p, err)
	}
	c := f.submit(false, f.payee("1234567890"), f.payee("1234567891"))
	a := c.txs[0]
	body, sum := txWebhook(t, secret, a.ID, c.payoutID, a.AmountInCents, "PENDING", nil, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("transaction webhook: %d", code)
	}
	body, sum = payoutWebhook(t, secret, c.payoutID, c.batchID, a.AmountInCents+c.txs[1].AmountInCents, "PENDING", t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("payout webhook: %d", code)
	}
	f.sim.SettleAll()
	// The webhooks put the payout on the schedule for its first poll
	// (enrollBatch), which the rebuild's listing leaves as it is.
	f.clock.Advance(FirstPollInterval)
	if _, err := e.PollOnce(ctx); err != nil { // rebuilds the schedule from Wompi, then polls
		t.Fatal(err)
	}
	byKey := transitions(f.statusEvents())
	for _, tx := range c.txs {
		evs := byKey[tx.Reference+"/APPROVED"]
		if len(evs) != 1 || deref(evs[0].BatchID) != c.batchID || deref(evs[0].PayoutID) != c.payoutID || evs[0].OriginAccountID != "" {
			t.Fatalf("%s APPROVED: %+v", tx.Reference, evs)
		}
	}
	if evs := byKey[a.Reference+"/PENDING"]; len(evs) != 1 || deref(evs[0].BatchID) != c.batchID {
		t.Fatalf("%s PENDING: %+v", a.Reference, evs)
	}
	var total int
	for _, b := range f.batchEvents() {
		if b.BatchID == c.batchID {
			total++
			if b.Status == payout.BatchTotalPayment && b.TransactionCount != 2 {
				t.Fatalf("batch event: %+v", b)
			}
		}
	}
	if total < 2 {
		t.Fatalf("%d batch events for %s, want PENDING and TOTAL_PAYMENT", total, c.batchID)
	}
}
