package track

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// listingBehind answers GET /payouts (the listing, not one payout) with no
// records while lag is set: a server copy behind the create, as Wompi's
// listings may be read (laggingpage_test.go in pkg/wompi).
type listingBehind struct{ lag atomic.Bool }

func (l *listingBehind) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/payouts") && l.lag.Load() {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
			Body: io.NopCloser(strings.NewReader(`{"status":200,"data":{"page":1,"limit":20,"total":0,"pages":0,"records":[]}}`))}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// behindListing returns a listingBehind and the Config option that gives
// an engine a Wompi rail reading through it.
func (f *fixture) behindListing(t *testing.T) (*listingBehind, func(*Config)) {
	t.Helper()
	lb := &listingBehind{}
	wc, err := wompi.New(wompi.Config{BaseURL: f.sim.BaseURL(), APIKey: f.sim.Config().APIKey,
		PrincipalID: f.sim.Config().PrincipalID, HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: lb}})
	if err != nil {
		t.Fatal(err)
	}
	return lb, func(c *Config) { c.Wompi = f.rail(wc, f.sim.Config().EventsSecret) }
}

// postEnrollFails posts a webhook while the next schedule write fails
// (failEnroll, armed here): it must be answered 503, so that Wompi sends it
// again.
func postEnrollFails(t *testing.T, url string, body []byte, sum string, armed *atomic.Bool) {
	t.Helper()
	armed.Store(true)
	if code := post(t, url, body, sum); code != http.StatusServiceUnavailable {
		t.Errorf("webhook whose payout could not be scheduled answered %d, want 503 so that Wompi sends it again", code)
	}
	if armed.Load() {
		t.Fatal("no schedule write was failed: the fault never happened")
	}
}

// The Wompi counterpart of TestUnknownStatusWithoutHandOffIsStillPolled
// (from a review). Faults lined up on one Wompi batch: Redis loses its
// data right after the dispatcher's hand-off, the rebuild of the polling
// schedule reads a listing behind the create (so the batch is left off,
// and the schedule is marked ready), and of the batch's webhooks only the
// first one arrives. That webhook was mapped through Wompi and emitted
// (or, with a status we do not know, answered 202), but the payout was
// never put back on the schedule: the sweep puts back only payouts the
// hand-off records, and no rebuild runs while the marker stands. Every
// later webhook lost, its requests stayed where they were for ever. The
// single-payout rails put such a payout on the schedule (enroll).
func TestWompiWebhookWithoutHandOffPutsThePayoutOnTheSchedule(t *testing.T) {
	for _, first := range []string{"transaction PENDING", "transaction status we do not know", "payout PENDING"} {
		t.Run(first, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{ownRedis: true})
			lb, behind := f.behindListing(t)
			e, srv := f.engine(behind)
			secret := f.sim.Config().EventsSecret
			ctx := context.Background()
			// No webhook URL: the simulator's webhooks are lost; the one
			// that arrives is posted below.
			c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"))
			if err := f.redis.FlushAll(ctx); err != nil {
				t.Fatal(err)
			}
			lb.lag.Store(true)
			if res, err := e.PollOnce(ctx); err != nil || !res.Rebuilt || res.Claimed != 0 {
				t.Fatalf("rebuild from a listing behind the create: %+v %v", res, err)
			}
			lb.lag.Store(false)

			tx := c.txs[0]
			var body []byte
			var sum string
			want := http.StatusOK
			switch first {
			case "transaction PENDING":
				body, sum = txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "PENDING", nil, t0)
			case "transaction status we do not know":
				body, sum = txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "ON_HOLD", nil, t0)
				want = http.StatusAccepted
			default:
				body, sum = payoutWebhook(t, secret, c.payoutID, c.batchID, c.txs[0].AmountInCents+c.txs[1].AmountInCents, "PENDING", t0)
			}
			if code := post(t, srv.URL, body, sum); code != want {
				t.Fatalf("first webhook: %d, want %d", code, want)
			}
			if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
				t.Errorf("scheduled: %d %v: a Wompi payout without hand-off is on no schedule after its webhook", n, err)
			}
			// Everything settles; every later webhook of it is lost.
			f.settleUnwatched(e, c)
			if n, _ := f.sub.Scheduled(ctx); n != 0 {
				t.Errorf("%d payouts still scheduled after every status is final", n)
			}
		})
	}
}

// The Wompi counterpart of TestEnrollFailureIsRetriedByTheProvider: a
// Wompi payout without hand-off whose webhook is mapped through Wompi,
// and Redis fails the one write that puts it on the polling schedule. The
// webhook must be answered 503, so that Wompi's retry schedules it (its
// status then a duplicate), not 200 with the payout on no schedule.
func TestWompiEnrollFailureIsRetriedByWompi(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var armed atomic.Bool
	rdb := hookedClient(t, f.redis.Client(), failEnroll{armed: &armed})
	_, srv := f.engine(func(c *Config) { c.Redis = rdb })
	ctx := context.Background()
	c := f.submit(false, f.payee("1234567890"))
	tx := c.txs[0]
	body, sum := txWebhook(t, f.sim.Config().EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "PENDING", nil, t0)
	postEnrollFails(t, srv.URL, body, sum, &armed)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("Wompi's retry: %d", code)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled: %d %v after the retry", n, err)
	}
}

// countEnrolls counts the ZADD NX on the polling schedule (enroll's
// Schedule).
type countEnrolls struct{ n *atomic.Int32 }

func (h countEnrolls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countEnrolls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isEnroll(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h countEnrolls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A new batch's webhooks usually come before the dispatcher's hand-off,
// one per transaction: each put the same payout on the schedule again, a
// Redis round trip per request of the batch (3.5 more heap objects per
// request in the load run). A payout enrolled within enrollMemory is not
// written again; after it, it is.
func TestWompiWebhooksOfOnePayoutEnrollItOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var n atomic.Int32
	rdb := hookedClient(t, f.redis.Client(), countEnrolls{n: &n})
	_, srv := f.engine(func(c *Config) { c.Redis = rdb })
	c := f.submit(false, f.payee("1234567890"), f.payee("1234567007"), f.payee("1234567008"))
	send := func(i int) { f.sendPending(srv.URL, c, i) }
	send(0)
	send(1)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d schedule writes for two webhooks of one payout within %v, want 1", got, enrollMemory)
	}
	f.clock.Advance(enrollMemory)
	send(2)
	if got := n.Load(); got != 2 {
		t.Fatalf("%d schedule writes after %v, want the payout written again", got, enrollMemory)
	}
	if sch, err := f.sub.Scheduled(context.Background()); err != nil || sch != 1 {
		t.Fatalf("scheduled: %d %v, want the payout", sch, err)
	}
}
