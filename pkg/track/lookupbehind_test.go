package track

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// lookupBehind answers a single-payout rail's lookup by our id (its
// listing filtered by our id, rail.SinglePayouts.Find: WEpayout's GET
// /v2/payout/payments?external_id=..., SmartFastPay's GET
// /v1/payouts?transaction_id=...) while armed with the answer it last
// passed through for the same query: a listing served by a replica behind
// the payouts' later statuses. While listEmpty is set, the listing by date
// (the rebuild's) is answered empty: a replica behind the creates. Every
// other call reaches the rail. Make one with wepLookupBehind or
// sfpLookupBehind.
type lookupBehind struct {
	path  string // the listing's path
	byID  string // the query parameter that makes the listing a lookup by our id
	empty string // an empty listing's body

	mu        sync.Mutex
	armed     bool
	listEmpty bool
	seen      map[string][]byte // the last answer passed through, by query
	served    int               // answers served from seen
}

// wepLookupBehind is lookupBehind for WEpayout.
func wepLookupBehind() *lookupBehind {
	return &lookupBehind{path: "/v2/payout/payments", byID: "external_id",
		empty: `{"data":[],"meta":{"current_page":1,"last_page":1,"per_page":100,"total":0}}`}
}

// sfpLookupBehind is lookupBehind for SmartFastPay.
func sfpLookupBehind() *lookupBehind {
	return &lookupBehind{path: smartfastpay.PathPayouts, byID: "transaction_id", empty: `{"requestId":"behind","data":[]}`}
}

func (l *lookupBehind) RoundTrip(req *http.Request) (*http.Response, error) {
	listing := req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, l.path)
	lookup := listing && req.URL.Query().Get(l.byID) != ""
	l.mu.Lock()
	empty := listing && !lookup && l.listEmpty
	l.mu.Unlock()
	if empty {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
			Body: io.NopCloser(strings.NewReader(l.empty))}, nil
	}
	if !lookup {
		return http.DefaultTransport.RoundTrip(req)
	}
	l.mu.Lock()
	body, ok := l.seen[req.URL.RawQuery]
	if ok && l.armed {
		l.served++
		l.mu.Unlock()
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Request: req, Body: io.NopCloser(bytes.NewReader(body))}, nil
	}
	l.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.seen == nil {
		l.seen = map[string][]byte{}
	}
	l.seen[req.URL.RawQuery] = body
	l.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (l *lookupBehind) arm(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = on
}

func (l *lookupBehind) listBehind(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listEmpty = on
}

// behindAfterALoss follows a Redis loss that took the hand-offs of two
// payouts under id: by webhook (not byPoll), the schedule's rebuild reads
// a listing behind the creates, which lists neither, so that only their
// webhooks can put them back; then the lookup by our id, through lagging,
// lists both, and l serves it from that copy from now on.
func (l *lookupBehind) behindAfterALoss(t *testing.T, e *Engine, lagging rail.SinglePayouts, id string, byPoll bool) {
	t.Helper()
	ctx := context.Background()
	if !byPoll {
		l.listBehind(true)
		if res, err := e.PollOnce(ctx); err != nil || !res.Rebuilt || res.Claimed != 0 {
			t.Fatalf("rebuild behind the creates: %+v %v", res, err)
		}
		l.listBehind(false)
	}
	if ps, err := lagging.Find(ctx, id); err != nil || len(ps) != 2 { // the copy the lookup is served from
		t.Fatalf("lookup: %v %v", ps, err)
	}
	l.arm(true)
}

// endsWhileBehind brings the ends of the payouts ids of rail name, ended
// while l serves the lookup from a copy behind, to the tracker: by a poll
// (byPoll: each put on the schedule, as the rebuild after the loss does)
// or by deliver (their webhooks). It fails unless the lookup was served
// behind and the ends kept back were counted, then lets the copy catch up
// and polls again.
func (f *fixture) endsWhileBehind(t *testing.T, e *Engine, l *lookupBehind, name rail.Name, byPoll bool, ids []string, deliver func()) {
	t.Helper()
	if byPoll {
		for _, id := range ids {
			if err := f.sub.Schedule(context.Background(), rail.HandOffID(name, id), f.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		deliver()
	}
	f.pollRounds(e, 2, 10*time.Minute) // while the lookup is behind
	if l.servedBehind() == 0 {
		t.Fatal("no lookup was served from the copy behind: the fault never happened")
	}
	if n := testutil.ToFloat64(e.m.failuresHeld.WithLabelValues(string(name))); n == 0 {
		t.Errorf("%s ends kept back while the lookup lagged, and payouts_tracker_failures_held_total did not count them", name)
	}
	l.arm(false) // the copy catches up
	f.pollRounds(e, 3, 10*time.Minute)
}

func (l *lookupBehind) servedBehind() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served
}

// The pair after a Redis loss (from a review): two payments under one
// invoice at WEpayout, X (the answer to its POST lost) and Y (adopted,
// handed off, its PENDING emitted), then Redis loses its data: neither
// has a hand-off, and the status key knows nothing. Both fail while
// WEpayout's lookup by our id is served from a copy behind, which still
// lists both as processing. Each failure found another payment under our
// id that might still pay, and was not emitted: its webhook was answered
// 200 without putting it on the polling schedule, or its poll took it off
// as final. (By webhook, the schedule's rebuild after the loss read a
// listing behind the creates: only a webhook's enroll puts the payments
// back.) The request stayed PENDING for ever. A failure kept back only
// because of what the lookup listed must stay watched: once the lookup
// catches up, one of the two failures ends the request.
func TestWEpayoutBothPaymentsFailWhileTheLookupLags(t *testing.T) {
	webhookAndPoll(t, func(t *testing.T, byPoll bool) {
		f := newFixture(t, fixtureOpts{ownRedis: true})
		s := newSingles(t)
		lb := wepLookupBehind()
		lagging := s.wep.Client(wepayout.Config{HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: lb}})
		e, srv := f.singleEngine(s, func(c *Config) { c.WEpayout, c.LossGrace = lagging, -1 })
		s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1}) // webhooks posted by hand below
		ctx := context.Background()
		r := f.wepPayout(srv.URL, "04") // processing, then failed (4), a second apart
		x, err := s.wepc.Create(ctx, r) // its answer lost: no hand-off
		if err != nil {
			t.Fatal(err)
		}
		xh, xbody, err := s.wep.SignedWebhook(r.ID) // X's: the status is read from WEpayout
		if err != nil {
			t.Fatal(err)
		}
		y := f.handOff(s.wepc, r)  // Y: adopted
		s.wep.Advance(time.Second) // both processing
		s.wait(t)
		f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING
		if got := statusesOf(f.statusEvents(), r.ID); len(got) != 1 || got[0] != payout.StatusPending {
			t.Fatalf("Y's webhook: %v", got)
		}
		if err := f.redis.FlushAll(ctx); err != nil { // the hand-offs and the status key are lost
			t.Fatal(err)
		}
		lb.behindAfterALoss(t, e, lagging, r.ID, byPoll)
		s.wep.Advance(time.Second) // both fail
		s.wait(t)
		for _, id := range []string{x.ProviderID, y} {
			if p, err := s.wepc.Get(ctx, id); err != nil || p.Status != payout.StatusFailed {
				t.Fatalf("payment %s: %+v %v", id, p, err)
			}
		}
		f.endsWhileBehind(t, e, lb, rail.WEpayout, byPoll, []string{x.ProviderID, y}, func() {
			yh, ybody, err := s.wep.SignedWebhook(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, wh := range []struct {
				h    http.Header
				body []byte
			}{{xh, xbody}, {yh, ybody}} {
				if code := postTo(t, srv.URL, WEpayoutWebhookPath, wh.h, wh.body); code != http.StatusOK {
					t.Fatalf("failure webhook answered %d", code)
				}
			}
		})
		evs := f.statusEvents()
		got := statusesOf(evs, r.ID)
		t.Logf("request %s: %v", r.ID, got)
		if len(got) == 0 || !got[len(got)-1].Final() {
			t.Errorf("both payments failed, and the request never got a final status: %v", got)
		}
		for _, st := range got {
			if st == payout.StatusApproved {
				t.Errorf("APPROVED emitted, and no payment paid: %v", got)
			}
		}
		checkLog(t, evs)
	})
}

// finalCallbacks is a callback URL that keeps SmartFastPay's callbacks of
// a final payout status (failed, refunded, returned), signed as sent, for
// a test to deliver by hand.
type finalCallbacks struct {
	mu   sync.Mutex
	kept []signedCallback
}

type signedCallback struct {
	h    http.Header
	body []byte
}

func (c *finalCallbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, st := range []string{smartfastpay.StatusFailed, smartfastpay.StatusRefunded, smartfastpay.StatusReturned} {
		if bytes.Contains(body, []byte(`"payout_status":"`+st+`"`)) {
			c.mu.Lock()
			c.kept = append(c.kept, signedCallback{h: r.Header.Clone(), body: body})
			c.mu.Unlock()
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (c *finalCallbacks) all() []signedCallback {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.kept)
}

// The WEpayout pair of TestWEpayoutBothPaymentsFailWhileTheLookupLags on
// SmartFastPay, whose lookup by our id is its listing by transaction_id:
// two payouts under one id, X (the answer to its POST lost) and Y
// (adopted, handed off, its PENDING emitted), then Redis loses its data.
// Both end (failed; or paid, then refunded) while the lookup is served
// from a copy behind that still lists both as pending: each end finds
// another payout under our id that may still pay, and is kept back
// (failureOfOther's otherMayPay). Kept back, each must stay watched
// (keepWatching's schedule for a webhook, pollSingle's reschedule for a
// poll), so that once the lookup catches up one of them ends the request:
// FAILED, or APPROVED then RETURNED; never left non-final.
func TestSmartFastPayBothPayoutsEndWhileTheLookupLags(t *testing.T) {
	for _, c := range []struct {
		name   string
		suffix string // the simulator's path
		want   []payout.Status
	}{
		{"Failed", "13", []payout.Status{payout.StatusPending, payout.StatusFailed}},
		{"Refunded", "21", []payout.Status{payout.StatusPending, payout.StatusApproved, payout.StatusReturned}},
	} {
		t.Run(c.name, func(t *testing.T) {
			webhookAndPoll(t, func(t *testing.T, byPoll bool) {
				f := newFixture(t, fixtureOpts{ownRedis: true})
				s := newSingles(t)
				lb := sfpLookupBehind()
				lagging := s.sfp.Client(func(cfg *smartfastpay.Config) {
					cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: lb}
				})
				e, srv := f.singleEngine(s, func(cfg *Config) { cfg.SmartFastPay, cfg.LossGrace = lagging, -1 })
				ends := &finalCallbacks{}
				cb := httptest.NewServer(ends) // the callbacks of the ends, posted by hand below
				t.Cleanup(cb.Close)
				ctx := context.Background()
				r := f.sfpPayout(cb.URL, c.suffix)
				x, err := s.sfpc.Create(ctx, r) // its answer lost: no hand-off
				if err != nil {
					t.Fatal(err)
				}
				y := f.handOff(s.sfpc, r)              // Y: adopted
				f.deliverSFPCallback(s, srv.URL, r.ID) // Y's PENDING
				if got := statusesOf(f.statusEvents(), r.ID); len(got) != 1 || got[0] != payout.StatusPending {
					t.Fatalf("Y's callback: %v", got)
				}
				if err := f.redis.FlushAll(ctx); err != nil { // the hand-offs and the status key are lost
					t.Fatal(err)
				}
				lb.behindAfterALoss(t, e, lagging, r.ID, byPoll)
				s.sfp.Advance(time.Minute) // both walk their path to its end
				s.wait(t)
				for _, id := range []string{x.ProviderID, y} {
					if p, err := s.sfpc.Get(ctx, id); err != nil || p.Status != c.want[len(c.want)-1] {
						t.Fatalf("payout %s: %+v %v", id, p, err)
					}
				}
				f.endsWhileBehind(t, e, lb, rail.SmartFastPay, byPoll, []string{x.ProviderID, y}, func() {
					cbs := ends.all()
					if len(cbs) != 2 {
						t.Fatalf("%d callbacks of an end, want X's and Y's", len(cbs))
					}
					for _, cb := range cbs {
						if code := postTo(t, srv.URL, SmartFastPayWebhookPath, cb.h, cb.body); code != http.StatusOK {
							t.Fatalf("callback of an end answered %d", code)
						}
					}
				})
				evs := f.statusEvents()
				got := statusesOf(evs, r.ID)
				t.Logf("request %s: %v", r.ID, got)
				if !slices.Equal(got, c.want) {
					t.Errorf("both payouts ended, and the request's statuses are %v, want %v", got, c.want)
				}
				checkLog(t, evs)
			})
		})
	}
}

// The pair (review): WEpayout's lookup by our id served from a copy behind
// the creates. It missed X (the answer to its POST lost), so the
// dispatcher posted Y, adopted it, and Y's PENDING was emitted; X failed.
// Then Redis loses its data: neither has a hand-off, the status key knows
// nothing. X's failure, sent again (or polled after the rebuild), asks the
// lookup, still behind, which lists neither payment: failureOfOther found
// no other payout that may pay and X's FAILED was emitted while Y pays.
// Y's APPROVED then followed it as a new life: the marketplace reads FAILED
// and asks again, and the payee is paid twice.
func TestWEpayoutNonAdoptedFailureAfterRedisLossWhileTheLookupMissesTheAdopted(t *testing.T) {
	webhookAndPoll(t, func(t *testing.T, byPoll bool) {
		f := newFixture(t, fixtureOpts{ownRedis: true})
		s := newSingles(t)
		lb := wepLookupBehind()
		lagging := s.wep.Client(wepayout.Config{HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: lb}})
		e, srv := f.singleEngine(s, func(c *Config) { c.WEpayout, c.LossGrace = lagging, -1 })
		s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1}) // webhooks posted by hand below
		ctx := context.Background()
		r := f.wepPayout(srv.URL, "99")
		if ps, err := lagging.Find(ctx, r.ID); err != nil || len(ps) != 0 { // the copy the lookup is served from
			t.Fatalf("lookup: %v %v", ps, err)
		}
		lb.arm(true)
		x, err := s.wepc.Create(ctx, r) // its answer lost: no hand-off
		if err != nil {
			t.Fatal(err)
		}
		if ps, err := lagging.Find(ctx, r.ID); err != nil || len(ps) != 0 { // the dispatcher's lookup misses X
			t.Fatalf("lookup behind: %v %v", ps, err)
		}
		if err := s.wep.SetStatus(r.ID, "4"); err != nil { // X fails
			t.Fatal(err)
		}
		s.wait(t)
		xh, xbody, err := s.wep.SignedWebhook(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.handOff(s.wepc, r)                  // Y: posted and adopted
		f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING
		if err := f.redis.FlushAll(ctx); err != nil {
			t.Fatal(err)
		}
		f.otherFailureArrives(e, s, srv.URL, byPoll, x.ProviderID, xh, xbody)
		f.adoptedPays(s, srv.URL, r.ID)
	})
}
