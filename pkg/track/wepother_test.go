package track

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// Two payments under one invoice at WEpayout (it does not deduplicate): X,
// failed, and Y, adopted and handed off (dispatch.adoptable), PENDING. X's
// failure, by webhook or by poll, has no hand-off: it is read from
// WEpayout and must not end the request FAILED while Y pays.
func TestWEpayoutNonAdoptedFailureNotEmitted(t *testing.T) {
	webhookAndPoll(t, func(t *testing.T, byPoll bool) {
		f := newFixture(t, fixtureOpts{})
		s := newSingles(t)
		e, srv := f.singleEngine(s, nil)
		s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1}) // webhooks posted by hand below
		r := f.wepPayout(srv.URL, "99")                     // stays processing until SetStatus
		xh, xbody, xid := f.otherWEpayment(s, r, "4")
		f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING
		f.otherFailureArrives(e, s, srv.URL, byPoll, xid, xh, xbody)
		f.adoptedPays(s, srv.URL, r.ID)
	})
}

// The pair: the answer to the POST of X is lost, and X's webhook comes
// before the dispatcher's lookup: X has no hand-off, so its PENDING is read
// from WEpayout and emitted (the request's status key follows X), and X is
// put on the polling schedule. The lookup misses X (a listing behind its
// write), so Y is posted, adopted and handed off; its SUBMITTED and PENDING
// are stale after X's PENDING. Then X fails: failureOfOther saw the key
// follow X and emitted the FAILED; Y's APPROVED followed as a new life. The
// marketplace reads FAILED and asks again: the payee is paid twice.
func TestWEpayoutNonAdoptedFailureAfterItsPendingNotEmitted(t *testing.T) {
	webhookAndPoll(t, func(t *testing.T, byPoll bool) {
		f := newFixture(t, fixtureOpts{})
		s := newSingles(t)
		e, srv := f.singleEngine(s, nil)
		s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
		r := f.wepPayout(srv.URL, "99")
		ctx := context.Background()
		x, err := s.wepc.Create(ctx, r) // its answer lost: no hand-off
		if err != nil {
			t.Fatal(err)
		}
		f.deliverWEPWebhook(s, srv.URL, r.ID) // X's PENDING, before the lookup
		if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING]" {
			t.Fatalf("X's webhook: %v", got)
		}
		if err := s.wep.SetStatus(r.ID, "4"); err != nil { // X fails
			t.Fatal(err)
		}
		s.wait(t)
		xh, xbody, err := s.wep.SignedWebhook(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.handOff(s.wepc, r)                  // Y: posted after a lookup that missed X
		f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING: a duplicate
		f.otherFailureArrives(e, s, srv.URL, byPoll, x.ProviderID, xh, xbody)
		f.adoptedPays(s, srv.URL, r.ID)
	})
}

// otherWEpayment makes two payments of r at WEpayout: X, moved to status,
// whose signed webhook and id it returns, then Y, handed off: the payment
// the dispatcher adopts.
func (f *fixture) otherWEpayment(s *singles, r rail.PayoutRequest, status string) (http.Header, []byte, string) {
	f.t.Helper()
	x, err := s.wepc.Create(context.Background(), r)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := s.wep.SetStatus(r.ID, status); err != nil {
		f.t.Fatal(err)
	}
	s.wait(f.t)
	h, body, err := s.wep.SignedWebhook(r.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	f.handOff(s.wepc, r)
	return h, body, x.ProviderID
}

// otherFailureArrives has the failure of X, a payment not handed off,
// reach the engine: its webhook, or a poll of it (on the schedule as its
// webhook would have put it).
func (f *fixture) otherFailureArrives(e *Engine, s *singles, url string, byPoll bool, xid string, xh http.Header, xbody []byte) {
	f.t.Helper()
	if !byPoll {
		code := postTo(f.t, url, WEpayoutWebhookPath, xh, xbody)
		f.t.Logf("X's failure webhook answered %d", code)
		return
	}
	ctx := context.Background()
	if err := f.sub.Schedule(ctx, rail.HandOffID(rail.WEpayout, xid), f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	res, err := e.PollOnce(ctx)
	f.t.Logf("poll: %+v %v", res, err)
}

// adoptedPays pays Y, delivers its webhook, and checks that the request
// was never emitted FAILED and that its log is one lifecycle.
func (f *fixture) adoptedPays(s *singles, url, requestID string) {
	f.t.Helper()
	if err := s.wep.SetStatus(requestID, "3"); err != nil {
		f.t.Fatal(err)
	}
	s.wait(f.t)
	f.deliverWEPWebhook(s, url, requestID)
	evs := f.statusEvents()
	got := statusesOf(evs, requestID)
	f.t.Logf("request %s: %v", requestID, got)
	for _, st := range got {
		if st == payout.StatusFailed {
			f.t.Errorf("the request was emitted FAILED from the payment not adopted, while the adopted one pays: %v", got)
		}
	}
	if len(got) == 0 || got[len(got)-1] != payout.StatusApproved {
		f.t.Errorf("the adopted payment's APPROVED is missing: %v", got)
	}
	checkLog(f.t, evs)
}

// deliverWEPWebhook posts WEpayout's signed webhook of requestID's latest
// payment to the engine's server at url, and fails the test unless it is
// answered 200.
func (f *fixture) deliverWEPWebhook(s *singles, url, requestID string) {
	f.t.Helper()
	h, body, err := s.wep.SignedWebhook(requestID)
	if err != nil {
		f.t.Fatal(err)
	}
	if code := postTo(f.t, url, WEpayoutWebhookPath, h, body); code != http.StatusOK {
		f.t.Fatalf("the webhook of %s: %d", requestID, code)
	}
}

// The pair: two payments under one invoice (X failed, Y adopted and paid,
// its APPROVED emitted), then Redis is lost: the hand-off and the status
// key are gone. X's webhook, delivered again (or X failing only now), comes
// before any poll: it found the key empty and was emitted FAILED after the
// APPROVED: the marketplace reads FAILED and asks again.
func TestWEpayoutNonAdoptedFailureAfterRedisLossNotEmitted(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, func(c *Config) { c.LossGrace = -1 })
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	r := f.wepPayout(srv.URL, "99")
	xh, xbody, _ := f.otherWEpayment(s, r, "4")
	f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING
	f.adoptedPays(s, srv.URL, r.ID)
	ctx := context.Background()
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	code := postTo(t, srv.URL, WEpayoutWebhookPath, xh, xbody)
	t.Logf("X's failure webhook after the loss answered %d", code)
	for range 2 {
		f.clock.Advance(time.Minute)
		res, err := e.PollOnce(ctx)
		t.Logf("poll: %+v %v", res, err)
	}
	evs := f.statusEvents()
	got := statusesOf(evs, r.ID)
	t.Logf("request %s: %v", r.ID, got)
	for _, st := range got {
		if st == payout.StatusFailed {
			t.Errorf("the request was emitted FAILED from the payment not adopted after a Redis loss: %v", got)
		}
	}
	checkLog(t, evs)
}

// webhookAndPoll runs test twice: the failure reaches the engine by its
// webhook, then by a poll.
func webhookAndPoll(t *testing.T, test func(t *testing.T, byPoll bool)) {
	for _, byPoll := range []bool{false, true} {
		t.Run(map[bool]string{false: "Webhook", true: "Poll"}[byPoll], func(t *testing.T) { test(t, byPoll) })
	}
}
