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

// A final batch whose transaction listing comes back short was taken off
// the polling schedule: the poll trusted the listing as complete, allFinal
// held over the transactions it saw, and the payout was marked done. A
// transaction the listing left out, whose transaction.updated was lost
// (Wompi retries only three more times), never got its final status on
// the topic. Two ways to be short: one page answered with no records below
// what its meta announces (the walk now fails on it, wompi.paginate), and
// every page from a server copy behind, announcing one transaction fewer
// (GET /payouts/{id}'s totalTransactions is now checked against the
// listing). (From a review.)
func TestShortTransactionListingDoesNotEndThePoll(t *testing.T) {
	t.Run("an empty page below its meta", func(t *testing.T) {
		records := regexp.MustCompile(`"records":\[.*\]`)
		shortListing(t, func(b []byte, page string) []byte {
			if page != "2" {
				return b
			}
			return records.ReplaceAll(b, []byte(`"records":[]`))
		}, false)
	})
	t.Run("every page one transaction short", func(t *testing.T) {
		shortListing(t, oneTransactionShort, false)
	})
}

// A final batch polled without its hand-off (lost with Redis) whose GET
// answers no readable createdAt was as old as year 1: a listing short by
// one (a server copy behind) was taken for Wompi counting differently
// (ShortListingPatience) at the first poll, and the payout left the
// schedule with a transaction's final status never emitted. (From a
// review.)
func TestShortListingWithoutCreationTimeStaysScheduled(t *testing.T) {
	shortListing(t, oneTransactionShort, true)
}

// oneTransactionShort is a listing page from a server copy behind: one
// transaction fewer in its meta, and the last page empty.
func oneTransactionShort(b []byte, page string) []byte {
	if page == "3" {
		return regexp.MustCompile(`"records":\[.*\]`).ReplaceAll(b, []byte(`"records":[]`))
	}
	b = bytes.ReplaceAll(b, []byte(`"pages":3`), []byte(`"pages":2`))
	return bytes.ReplaceAll(b, []byte(`"total":3`), []byte(`"total":2`))
}

// shortListing settles a three-transaction batch whose webhooks are lost,
// and polls it through a proxy whose rewrite edits each page of the
// transactions listing (the body, its page number) while a glitch lasts;
// noAge also deletes its hand-off (its schedule entry kept) and takes the
// payout's createdAt out of every GET of it: the payout's age unknown.
func shortListing(t *testing.T, rewrite func(b []byte, page string) []byte, noAge bool) {
	f := newFixture(t, fixtureOpts{ownRedis: true, pageSize: 1})
	// Wompi's webhooks are lost: no webhook URL.
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("9991234567"))
	f.sim.Advance(5 * time.Second) // every transaction and the batch settle
	ctx := context.Background()
	if p, err := f.wompi.Payout(ctx, c.payoutID); err != nil || p.Status != wompi.BatchStatus(payout.BatchTotalPayment) {
		t.Fatalf("batch at Wompi: %+v %v", p, err)
	}

	aged := !noAge
	if noAge {
		// The hand-off is lost; the schedule entry is kept.
		if err := f.redis.Client().Del(ctx, f.prefix+"payout:{"+c.payoutID+"}").Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A proxy in front of the simulator rewrites the transactions
	// listing's pages while glitch is set.
	target, _ := url.Parse(f.sim.BaseURL())
	var glitch atomic.Bool
	glitch.Store(true)
	created := regexp.MustCompile(`"createdAt":"[^"]*"`)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		q := r.Request.URL
		payoutGET := !aged && strings.HasSuffix(q.Path, "/"+c.payoutID)
		if !payoutGET && (!glitch.Load() || !strings.HasSuffix(q.Path, "/transactions")) {
			return nil
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		if payoutGET {
			b = created.ReplaceAll(b, []byte(`"createdAt":null`))
		} else {
			b = rewrite(b, q.Query().Get("page"))
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
	glitch.Store(false) // the glitch passes
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
