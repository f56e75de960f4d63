package track

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// A final batch polled without its hand-off (lost with Redis) whose GET
// answers no readable createdAt was as old as year 1: a listing short by
// one (a server copy behind) was taken for Wompi counting differently
// (ShortListingPatience) at the first poll, and the payout left the
// schedule with a transaction's final status never emitted. (From a
// review.)
func TestShortListingWithoutCreationTimeStaysScheduled(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true, pageSize: 1})
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("9991234567"))
	f.sim.Advance(5 * time.Second)
	ctx := context.Background()
	if p, err := f.wompi.Payout(ctx, c.payoutID); err != nil || p.Status != wompi.BatchStatus(payout.BatchTotalPayment) {
		t.Fatalf("batch at Wompi: %+v %v", p, err)
	}
	// The hand-off is lost; the schedule entry is kept.
	if err := f.redis.Client().Del(ctx, f.prefix+"payout:{"+c.payoutID+"}").Err(); err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(f.sim.BaseURL())
	var glitch atomic.Bool
	glitch.Store(true)
	created := regexp.MustCompile(`"createdAt":"[^"]*"`)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		q := r.Request.URL
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		if strings.HasSuffix(q.Path, "/"+c.payoutID) {
			b = created.ReplaceAll(b, []byte(`"createdAt":null`))
		} else if glitch.Load() && strings.HasSuffix(q.Path, "/transactions") {
			if q.Query().Get("page") == "3" {
				b = regexp.MustCompile(`"records":\[.*\]`).ReplaceAll(b, []byte(`"records":[]`))
			}
			b = bytes.ReplaceAll(b, []byte(`"pages":3`), []byte(`"pages":2`))
			b = bytes.ReplaceAll(b, []byte(`"total":3`), []byte(`"total":2`))
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Del("Content-Length")
		return nil
	}
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)
	wc, err := wompi.New(wompi.Config{BaseURL: proxy.URL, APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.engine(func(cfg *Config) { cfg.Wompi = f.rail(wc, f.sim.Config().EventsSecret) })

	f.clock.Advance(time.Minute)
	res, err := e.PollOnce(ctx)
	t.Logf("first poll (short listing): %+v %v", res, err)
	glitch.Store(false)
	for range 3 {
		f.clock.Advance(time.Hour)
		res, err := e.PollOnce(ctx)
		t.Logf("later poll: %+v %v", res, err)
	}
	evs := f.statusEvents()
	for _, tx := range c.txs {
		wt, err := f.wompi.PayoutTransaction(ctx, c.payoutID, tx.ID)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := wompi.TransactionStatus(wt.Status).PayoutStatus()
		got := statusesOf(evs, tx.Reference)
		if len(got) == 0 || got[len(got)-1] != st {
			t.Errorf("%s: statuses on the topic %v; Wompi says %s: the final status is lost", tx.Reference, got, st)
		}
	}
}
