package track

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// singles is a test's two single-payout rails: their simulators on
// manual clocks, and clients wired to them.
type singles struct {
	sfp  *sfptest.Server
	sfpc *smartfastpay.Client
	wep  *weptest.Server
	wepc *wepayout.Client
}

// sfpCallbacks returns a sender of SmartFastPay's signed callback for
// payout r (providerID at SmartFastPay) to the tracker at srvURL, by its
// payout_status: its answer's status code. For tests whose simulator's own
// callbacks go nowhere, delivered by hand.
func (s *singles) sfpCallbacks(t *testing.T, srvURL string, r rail.PayoutRequest, providerID string) func(status string) int {
	secret := s.sfp.Config().WebhookSecret
	return func(status string) int {
		body, _ := json.Marshal(map[string]any{"requestId": "x", "data": []map[string]any{{"id": providerID, "customer_id": "cust-1",
			"transaction_id": r.ID, "amount": float64(r.AmountInCents) / 100, "status": "paid", "type": "payout", "payout_status": status}}})
		h := http.Header{smartfastpay.HeaderSignature: {smartfastpay.Sign(secret, t0, body)}}
		return postTo(t, srvURL, SmartFastPayWebhookPath, h, body)
	}
}

func newSingles(t *testing.T) *singles {
	s := &singles{}
	s.sfp = sfptest.NewTestServer(t, sfptest.Config{Clock: sfptest.NewManualClock(t0), WebhookBackoff: 10 * time.Millisecond, Seed: 1})
	s.sfpc = s.sfp.Client(nil)
	s.wep = weptest.NewTestServer(t, weptest.Config{Clock: weptest.NewManualClock(t0), StepJitter: -1,
		WebhookBackoff: 10 * time.Millisecond, Seed: 1})
	s.wepc = s.wep.Client(wepayout.Config{})
	return s
}

// singleEngine is f.engine with both single-payout rails enabled.
func (f *fixture) singleEngine(s *singles, mut func(*Config)) (*Engine, *httptest.Server) {
	return f.engine(func(c *Config) {
		c.SmartFastPay, c.WEpayout, c.WEpayoutAPIKey = s.sfpc, s.wepc, s.wep.Config().APIKey
		if mut != nil {
			mut(c)
		}
	})
}

// settle moves a WEpayout and a SmartFastPay payout to new statuses at
// their simulators and waits for the webhooks those send (or drop).
func (s *singles) settle(t testing.TB, wepID, wepStatus, sfpID, sfpStatus string) {
	t.Helper()
	if err := s.wep.SetStatus(wepID, wepStatus); err != nil {
		t.Fatal(err)
	}
	if err := s.sfp.SetStatus(sfpID, sfpStatus); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
}

func (s *singles) wait(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.sfp.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.wep.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

// handOff does what the dispatcher does for one single payout: create it
// at the provider, then record the hand-off (rail:providerId, one
// transaction whose id is the provider's).
func (f *fixture) handOff(c rail.SinglePayouts, r rail.PayoutRequest) string {
	f.t.Helper()
	ctx := context.Background()
	p, err := c.Create(ctx, r)
	if err != nil {
		f.t.Fatal(err)
	}
	id := rail.HandOffID(c.Rail(), p.ProviderID)
	batch := "batch-" + r.ID
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: id, BatchID: batch, OriginAccountID: "acct-" + string(c.Rail()),
		PaymentType: "PROVIDERS", TotalAmountInCents: r.AmountInCents, TransactionCount: 1, SubmittedAt: f.clock.Now()},
		[]submitted.Transaction{{TransactionID: p.ProviderID, RequestID: r.ID, BatchID: batch, PayoutID: id,
			AmountInCents: r.AmountInCents, OriginAccountID: "acct-" + string(c.Rail())}}, f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
	return p.ProviderID
}

// sfpPayout is a SmartFastPay payout to a payee whose phone ends in
// suffix (the simulator's path: 21 refunded, 13 failed, other paid).
func (f *fixture) sfpPayout(callback, suffix string) rail.PayoutRequest {
	f.seq++
	return rail.PayoutRequest{ID: fmt.Sprintf("req-%s-%d", shortName(f.t), f.seq), AmountInCents: int64(150000 + f.seq), Currency: "COP",
		CallbackURL: callback + SmartFastPayWebhookPath,
		Payee: rail.Payee{Name: "Ana Perez", Email: "ana@example.co", Phone: "5730000000" + suffix, LegalIDType: "CC",
			LegalID: "10000000001", CustomerID: "cust-1"}}
}

// wepPayout is a WEpayout PIX payout whose key ends in digits (the
// simulator's path: 05 rejected, 06 cancelled WE0001, 16 cancelled, 07
// through Awaiting, 99 stays processing, other paid).
func (f *fixture) wepPayout(callback, digits string) rail.PayoutRequest {
	f.seq++
	return rail.PayoutRequest{ID: fmt.Sprintf("req-%s-%d", shortName(f.t), f.seq), AmountInCents: int64(5000 + f.seq), Currency: "BRL",
		CallbackURL: callback + WEpayoutWebhookPath,
		Payee:       rail.Payee{Name: "Ana Souza", LegalIDType: "CPF", LegalID: "52998224725", PixKey: "ana" + digits + "@example.com"}}
}

// postTo sends a webhook body with the given headers to path.
func postTo(t testing.TB, url, path string, h http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// statusesOf returns the statuses emitted for a request, in log order.
func statusesOf(evs []payout.StatusChange, requestID string) []payout.Status {
	var out []payout.Status
	for _, e := range evs {
		if e.RequestID == requestID {
			out = append(out, e.Status)
		}
	}
	return out
}

func checkLog(t testing.TB, evs []payout.StatusChange) {
	t.Helper()
	checkMonotonic(t, evs)
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Error(err)
	}
}

// checkSingle checks the contract fields of a single payout's event.
func checkSingle(t *testing.T, ev payout.StatusChange, name rail.Name, r rail.PayoutRequest, providerID string, src payout.Source) {
	t.Helper()
	if ev.RequestID != r.ID || deref(ev.TransactionID) != providerID || ev.PayoutID != nil || deref(ev.Rail) != string(name) ||
		ev.Source != src || deref(ev.BatchID) != "batch-"+r.ID || ev.AmountInCents != r.AmountInCents ||
		ev.OriginAccountID != "acct-"+string(name) || ev.EventID != payout.EventID("status", r.ID, string(ev.Status), providerID) {
		t.Errorf("event: %+v", ev)
	}
}

func TestSmartFastPayWebhooksEmitMappedStatuses(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	_, srv := f.singleEngine(s, nil)
	paid := f.sfpPayout(srv.URL, "00")
	refunded := f.sfpPayout(srv.URL, "21")
	failed := f.sfpPayout(srv.URL, "13")
	ids := map[string]string{}
	for _, r := range []rail.PayoutRequest{paid, refunded, failed} {
		ids[r.ID] = f.handOff(s.sfpc, r)
	}
	for range 5 { // onhold, success|failed, then refunded 3 s after success
		s.sfp.Advance(time.Second)
		s.wait(t)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for r, want := range map[*rail.PayoutRequest][]payout.Status{
		&paid:     {payout.StatusPending, payout.StatusApproved},
		&refunded: {payout.StatusPending, payout.StatusApproved, payout.StatusReturned},
		&failed:   {payout.StatusPending, payout.StatusFailed},
	} {
		if got := statusesOf(evs, r.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", r.ID, got, want)
		}
	}
	for _, ev := range evs {
		r := map[string]rail.PayoutRequest{paid.ID: paid, refunded.ID: refunded, failed.ID: failed}[ev.RequestID]
		checkSingle(t, ev, rail.SmartFastPay, r, ids[r.ID], payout.SourceWebhook)
	}
}

// A callback that is not SmartFastPay's own, or that contradicts our
// hand-off, is 401 and produces nothing.
func TestSmartFastPayForgedWebhookRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	r := f.sfpPayout("http://127.0.0.1:1/not-delivered-anywhere", "98") // onhold, stays
	providerID := f.handOff(s.sfpc, r)
	secret := s.sfp.Config().WebhookSecret
	callback := func(id, txID string, amount float64, status string) []byte {
		b, _ := json.Marshal(map[string]any{"requestId": "x", "data": []map[string]any{{"id": id, "customer_id": "cust-1",
			"transaction_id": txID, "amount": amount, "status": "paid", "type": "payout", "payout_status": status}}})
		return b
	}
	amount := float64(r.AmountInCents) / 100
	genuine := callback(providerID, r.ID, amount, "success")
	h := func(secret string, body []byte) http.Header {
		return http.Header{smartfastpay.HeaderSignature: {smartfastpay.Sign(secret, t0, body)}}
	}
	signedOther := h(secret, callback(providerID, r.ID, amount, "onhold"))
	cases := []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"no signature", nil, genuine},
		{"another body's signature", signedOther, genuine},
		{"re-signed with another secret", h("not-the-webhook-secret", genuine), genuine},
		{"signed, amount not ours", h(secret, callback(providerID, r.ID, amount+1, "success")), callback(providerID, r.ID, amount+1, "success")},
		{"signed, another request", h(secret, callback(providerID, "req-other", amount, "success")), callback(providerID, "req-other", amount, "success")},
		{"signed, never handed off, unknown to SmartFastPay", h(secret, callback("999999", r.ID, amount, "success")), callback("999999", r.ID, amount, "success")},
	}
	for _, c := range cases {
		if code := postTo(t, srv.URL, SmartFastPayWebhookPath, c.header, c.body); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", c.name, code)
		}
	}
	if got := testutil.ToFloat64(e.m.sigFailures); got != float64(len(cases)) {
		t.Errorf("signature failures: %v, want %d", got, len(cases))
	}
	if got := testutil.ToFloat64(e.m.railWebhooks.WithLabelValues("smartfastpay", ResultBadSig)); got != float64(len(cases)) {
		t.Errorf("rail_webhooks_total{smartfastpay,bad_signature}: %v", got)
	}
	if evs := f.statusEvents(); len(evs) != 0 {
		t.Fatalf("forged callbacks produced %d events: %+v", len(evs), evs)
	}
	// The genuine one, correctly signed, is accepted.
	if code := postTo(t, srv.URL, SmartFastPayWebhookPath, h(secret, genuine), genuine); code != http.StatusOK {
		t.Fatalf("genuine callback: %d", code)
	}
	evs := f.statusEvents()
	if len(evs) != 1 || evs[0].Status != payout.StatusApproved {
		t.Fatalf("events: %+v", evs)
	}
	checkSingle(t, evs[0], rail.SmartFastPay, r, providerID, payout.SourceWebhook)
}

// The tracker's answers to bodies it cannot read are the Wompi webhook's,
// on every rail.
func TestSingleRailWebhooksRefuseBadBodies(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	_, srv := f.singleEngine(s, func(c *Config) { c.MaxBodyBytes = 1024 })
	for _, path := range []string{SmartFastPayWebhookPath, WEpayoutWebhookPath} {
		for name, c := range map[string]struct {
			body []byte
			want int
		}{
			"too large":  {[]byte(`{"a":"` + strings.Repeat("x", 2048) + `"}`), http.StatusRequestEntityTooLarge},
			"not JSON":   {[]byte(`{"a":`), http.StatusBadRequest},
			"not object": {[]byte(`[1]`), http.StatusBadRequest},
		} {
			if code := postTo(t, srv.URL, path, nil, c.body); code != c.want {
				t.Errorf("%s %s: %d, want %d", path, name, code, c.want)
			}
		}
	}
	// A signed SmartFastPay callback of elements of another type only
	// (the docs show payouts only) is taken, 202, and emits nothing: a 4xx
	// would be retried for days. Unsigned, it is refused as any other.
	deposit := []byte(`{"requestId":"x","data":[{"id":"d-1","transaction_id":"t-1","type":"deposit","status":"paid"}]}`)
	signed := http.Header{smartfastpay.HeaderSignature: {smartfastpay.Sign(s.sfp.Config().WebhookSecret, t0, deposit)}}
	if code := postTo(t, srv.URL, SmartFastPayWebhookPath, signed, deposit); code != http.StatusAccepted {
		t.Errorf("SmartFastPay, signed, no payout: %d, want 202", code)
	}
	if code := postTo(t, srv.URL, SmartFastPayWebhookPath, nil, deposit); code != http.StatusUnauthorized {
		t.Errorf("SmartFastPay, unsigned, no payout: %d, want 401", code)
	}
	// A WEpayout id or invoice of blanks names no payment: 400, not the
	// 503 a failed read of the provider gets (WEpayout retries a 5xx).
	for name, body := range map[string]string{
		"blank id":      `{"id":"  ","invoice":"r-1","status":{"id":3}}`,
		"blank invoice": `{"id":1,"invoice":" ","status":{"id":3}}`,
	} {
		if code := postTo(t, srv.URL, WEpayoutWebhookPath, nil, []byte(body)); code != http.StatusBadRequest {
			t.Errorf("WEpayout %s: %d, want 400", name, code)
		}
	}
	if evs := f.statusEvents(); len(evs) != 0 {
		t.Fatalf("%d events", len(evs))
	}
}

// A refund after APPROVED ends RETURNED. After a Redis loss that forgets
// it, a late APPROVED callback (genuine, but older) is read again from
// SmartFastPay rather than emitted after the RETURNED; whether or not the
// replica has seen the loss before it (its epoch marker cache refreshed, as
// any first status of another request does). The loss forgot whether
// RETURNED was emitted: the APPROVED it implies and the RETURNED may be
// emitted again, with their eventIds, so the contract is checked after
// dedupe by eventId, with RETURNED last
// (TestReturnedFirstAfterRedisLossIsNotDropped).
func TestSmartFastPayLateApprovedAfterRedisLossNotEmittedAfterReturned(t *testing.T) {
	for _, seen := range []bool{false, true} {
		name := "loss-unseen"
		if seen {
			name = "loss-seen"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{ownRedis: true})
			s := newSingles(t)
			e, srv := f.singleEngine(s, nil)
			r := f.sfpPayout(srv.URL, "21")
			providerID := f.handOff(s.sfpc, r)
			for range 5 {
				s.sfp.Advance(time.Second)
				s.wait(t)
			}
			if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING APPROVED RETURNED]" {
				t.Fatalf("before the loss: %v", got)
			}
			ctx := context.Background()
			if err := f.redis.FlushAll(ctx); err != nil {
				t.Fatal(err)
			}
			if seen {
				if _, err := e.statuses.currentEpoch(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// The dispatcher's hand-off is back (recorded again); the status is not.
			f.handOffRecord(rail.SmartFastPay, providerID, r)
			body, _ := json.Marshal(map[string]any{"requestId": "x", "data": []map[string]any{{"id": providerID, "customer_id": "cust-1",
				"transaction_id": r.ID, "amount": float64(r.AmountInCents) / 100, "status": "paid", "type": "payout", "payout_status": "success"}}})
			h := http.Header{smartfastpay.HeaderSignature: {smartfastpay.Sign(s.sfp.Config().WebhookSecret, t0, body)}}
			if code := postTo(t, srv.URL, SmartFastPayWebhookPath, h, body); code != http.StatusOK {
				t.Fatalf("late APPROVED: %d", code)
			}
			evs := f.statusEvents()
			if err := payout.CheckLifecycles(evs); err != nil {
				t.Fatal(err)
			}
			if got := statusesOf(evs, r.ID); got[len(got)-1] != payout.StatusReturned {
				t.Fatalf("after the late APPROVED: %v, want RETURNED last", got)
			}
		})
	}
}

// A SmartFastPay payout paid, then refunded: APPROVED and RETURNED are on
// the topic (its onhold callback was lost). Redis loses the status record,
// and the older onhold callback comes again (a retry, or a replay). Read
// again, SmartFastPay answers RETURNED, which cannot follow PENDING: the
// tracker kept PENDING, now verified, and emitted it after the RETURNED.
// It now takes the rail's RETURNED (payout.Beyond), with the APPROVED it
// implies; with and without the dispatcher's hand-off.
func TestSmartFastPayLateOnHoldAfterRedisLossNotEmittedAfterReturned(t *testing.T) {
	for _, withHandOff := range []bool{true, false} {
		name := "without-hand-off"
		if withHandOff {
			name = "with-hand-off"
		}
		t.Run(name, func(t *testing.T) { lateOnHoldAfterReturned(t, withHandOff) })
	}
}

func lateOnHoldAfterReturned(t *testing.T, withHandOff bool) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	_, srv := f.singleEngine(s, nil)
	// The simulator's own callbacks go nowhere: we deliver them by hand.
	r := f.sfpPayout("http://127.0.0.1:1/nowhere", "21") // onhold, success, then refunded
	providerID := f.handOff(s.sfpc, r)
	for range 6 {
		s.sfp.Advance(time.Second)
	}
	p, err := s.sfpc.Get(context.Background(), providerID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != payout.StatusReturned {
		t.Fatalf("SmartFastPay's status %s (%s), want RETURNED", p.Status, p.ProviderStatus)
	}
	send := s.sfpCallbacks(t, srv.URL, r, providerID)
	// success then refunded delivered (the onhold callback was lost).
	if c := send("success"); c != 200 {
		t.Fatalf("success: %d", c)
	}
	if c := send("refunded"); c != 200 {
		t.Fatalf("refunded: %d", c)
	}
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[APPROVED RETURNED]" {
		t.Fatalf("before the loss: %v", got)
	}
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if withHandOff {
		f.handOffRecord(rail.SmartFastPay, providerID, r) // hand-off back; status record not
	}
	if code := send("onhold"); code != http.StatusOK { // the older callback, retried by SmartFastPay
		t.Fatalf("late onhold: %d", code)
	}
	evs := f.statusEvents()
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Fatal(err)
	}
	if got := statusesOf(evs, r.ID); got[len(got)-1] != payout.StatusReturned {
		t.Fatalf("after the late onhold: %v, want RETURNED last", got)
	}
}

// handOffRecord records a hand-off again for a payout already created.
func (f *fixture) handOffRecord(name rail.Name, providerID string, r rail.PayoutRequest) {
	f.t.Helper()
	id := rail.HandOffID(name, providerID)
	batch := "batch-" + r.ID
	if err := f.sub.Record(context.Background(), submitted.Payout{PayoutID: id, BatchID: batch, OriginAccountID: "acct-" + string(name),
		PaymentType: "PROVIDERS", TotalAmountInCents: r.AmountInCents, TransactionCount: 1, SubmittedAt: f.clock.Now()},
		[]submitted.Transaction{{TransactionID: providerID, RequestID: r.ID, BatchID: batch, PayoutID: id,
			AmountInCents: r.AmountInCents, OriginAccountID: "acct-" + string(name)}}, f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
}

// Lost webhooks: the poll reads the payouts the dispatcher handed off,
// emits their status (POLL) and takes the final ones off the schedule.
func TestSingleRailLostWebhooksCoveredByPoll(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	sr, wr, wpending := f.sfpPayout(srv.URL, "00"), f.wepPayout(srv.URL, "00"), f.wepPayout(srv.URL, "99")
	sid, wid, wpid := f.handOff(s.sfpc, sr), f.handOff(s.wepc, wr), f.handOff(s.wepc, wpending)
	for range 3 {
		s.sfp.Advance(time.Second)
		s.wep.Advance(time.Second)
	}
	s.wait(t)
	if evs := f.statusEvents(); len(evs) != 0 {
		t.Fatalf("webhooks were to be lost: %d events", len(evs))
	}
	ctx := context.Background()
	res, err := e.PollOnce(ctx)
	// The paid SmartFastPay payout stays scheduled: a refund may follow.
	if err != nil || res.Claimed != 3 || res.Done != 1 || res.Errors != 0 || res.Transitions != 3 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	want := map[string]payout.Status{sr.ID: payout.StatusApproved, wr.ID: payout.StatusApproved, wpending.ID: payout.StatusPending}
	reqs := map[string]rail.PayoutRequest{sr.ID: sr, wr.ID: wr, wpending.ID: wpending}
	pids := map[string]string{sr.ID: sid, wr.ID: wid, wpending.ID: wpid}
	for _, ev := range evs {
		if ev.Status != want[ev.RequestID] {
			t.Errorf("%s: %s, want %s", ev.RequestID, ev.Status, want[ev.RequestID])
		}
		name := rail.WEpayout
		if ev.RequestID == sr.ID {
			name = rail.SmartFastPay
		}
		checkSingle(t, ev, name, reqs[ev.RequestID], pids[ev.RequestID], payout.SourcePoll)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 2 {
		t.Fatalf("scheduled after the poll: %d %v, want the processing one and the paid SmartFastPay one", n, err)
	}
	// The processing one settles later, and the SmartFastPay one is
	// refunded; both webhooks are lost too.
	s.settle(t, wpending.ID, "3", sr.ID, "refunded")
	f.clock.Advance(time.Hour)
	if res, err := e.PollOnce(ctx); err != nil || res.Done != 2 || res.Transitions != 2 {
		t.Fatalf("second poll: %+v %v", res, err)
	}
	evs = f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, wpending.ID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("%v", got)
	}
	if got := statusesOf(evs, sr.ID); fmt.Sprint(got) != "[APPROVED RETURNED]" {
		t.Fatalf("refunded SmartFastPay payout: %v, want APPROVED RETURNED", got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Fatalf("scheduled after the second poll: %d %v", n, err)
	}
}

// A paid SmartFastPay payout is watched for a refund for ReturnWatch after
// its submission, then taken off the schedule.
func TestSmartFastPayApprovedWatchEnds(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, func(c *Config) { c.ReturnWatch = 2 * time.Hour })
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	sr := f.sfpPayout(srv.URL, "00")
	f.handOff(s.sfpc, sr)
	for range 3 {
		s.sfp.Advance(time.Second)
	}
	s.wait(t)
	ctx := context.Background()
	for i, want := range []int{0, 0, 1} { // at +0, +1 h: watched; at +3 h: done
		if res, err := e.PollOnce(ctx); err != nil || res.Done != want {
			t.Fatalf("poll %d: %+v %v, want %d done", i, res, err, want)
		}
		f.clock.Advance(time.Duration(1+i) * time.Hour)
	}
}

// After a Redis loss the schedule is rebuilt from the single-payout rails
// too: a payout whose hand-off was lost and whose webhooks are lost is
// polled again, with our id taken from the provider.
func TestRebuildAfterRedisLossSchedulesSinglePayouts(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	wp, sp := f.wepPayout(srv.URL, "99"), f.sfpPayout(srv.URL, "99") // both stay pending
	f.handOff(s.wepc, wp)
	f.handOff(s.sfpc, sp)
	ctx := context.Background()
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := e.PollOnce(ctx)
	if err != nil || res.Claimed != 2 || res.Transitions != 2 {
		t.Fatalf("poll after the loss: %+v %v, want both single payouts polled", res, err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for _, id := range []string{wp.ID, sp.ID} {
		if got := statusesOf(evs, id); fmt.Sprint(got) != "[PENDING]" {
			t.Fatalf("%s after the rebuild: %v, want PENDING from the poll", id, got)
		}
	}
}

func TestWEpayoutWebhooksEmitMappedStatuses(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	_, srv := f.singleEngine(s, nil)
	cases := []struct {
		digits string
		want   []payout.Status
		reason string
	}{
		{"00", []payout.Status{payout.StatusPending, payout.StatusApproved}, ""},
		{"04", []payout.Status{payout.StatusPending, payout.StatusFailed}, ""},
		{"05", []payout.Status{payout.StatusPending, payout.StatusFailed}, wepayout.ReasonStatus5},
		{"06", []payout.Status{payout.StatusPending, payout.StatusCancelled}, weptest.DefaultDetailCode},
		{"16", []payout.Status{payout.StatusPending, payout.StatusCancelled}, wepayout.ReasonStatus6},
	}
	reqs := make([]rail.PayoutRequest, len(cases))
	pids := make([]string, len(cases))
	for i, c := range cases {
		reqs[i] = f.wepPayout(srv.URL, c.digits)
		pids[i] = f.handOff(s.wepc, reqs[i])
	}
	for range 2 {
		s.wep.Advance(time.Second)
		s.wait(t)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for i, c := range cases {
		if got := statusesOf(evs, reqs[i].ID); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.digits, got, c.want)
		}
		for _, ev := range evs {
			if ev.RequestID != reqs[i].ID {
				continue
			}
			checkSingle(t, ev, rail.WEpayout, reqs[i], pids[i], payout.SourceWebhook)
			if ev.Status.Final() && deref(ev.ReasonCode) != c.reason {
				t.Errorf("%s: reason %q, want %q", c.digits, deref(ev.ReasonCode), c.reason)
			}
		}
	}
}

// A WEpayout webhook whose signature does not match OUR record (invoice,
// BRL, the amount we sent) is 401 and produces nothing; a genuine one
// whose unsigned status was altered produces WEpayout's status, not the
// body's.
func TestWEpayoutForgedWebhookRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	r := f.wepPayout("http://127.0.0.1:1", "99") // processing, stays; webhooks go nowhere
	other := f.wepPayout("http://127.0.0.1:1", "99")
	pid := f.handOff(s.wepc, r)
	otherPID := f.handOff(s.wepc, other)
	s.wep.Advance(time.Second)
	s.wait(t)
	h, body, err := s.wep.SignedWebhook(r.ID) // genuine, status 2
	if err != nil {
		t.Fatal(err)
	}
	key := s.wep.Config().APIKey
	sig := func(invoice string, amount int64, key string) http.Header {
		return http.Header{wepayout.HeaderSignature: {wepayout.SignatureHeader(invoice, "BRL", amount, key)}}
	}
	otherBody := bytes.Replace(body, []byte(`"id":`+pid), []byte(`"id":`+otherPID), 1)
	unknownBody := bytes.Replace(body, []byte(`"id":`+pid), []byte(`"id":999999`), 1)
	cases := []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"no signature", nil, body},
		{"another key", sig(r.ID, r.AmountInCents, "not-the-key"), body},
		{"amount not our record", sig(r.ID, r.AmountInCents+1, key), body},
		{"another invoice's signature", sig(other.ID, other.AmountInCents, key), body},
		{"invoice changed in the body", h, bytes.Replace(body, []byte(r.ID), []byte(other.ID), 1)},
		{"another payment's id", h, otherBody},
		{"never handed off, unknown to WEpayout", h, unknownBody},
	}
	for _, c := range cases {
		if code := postTo(t, srv.URL, WEpayoutWebhookPath, c.header, c.body); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", c.name, code)
		}
	}
	if got := testutil.ToFloat64(e.m.sigFailures); got != float64(len(cases)) {
		t.Errorf("signature failures: %v, want %d", got, len(cases))
	}
	if evs := f.statusEvents(); len(evs) != 0 {
		t.Fatalf("forged webhooks produced %d events: %+v", len(evs), evs)
	}
	// The status is not signed: "3" in the body of a payment WEpayout
	// still processes is emitted as WEpayout's PENDING.
	paid := bytes.Replace(body, []byte(`"status":{"id":2`), []byte(`"status":{"id":3`), 1)
	if bytes.Equal(paid, body) {
		t.Fatalf("body shape: %s", body)
	}
	if code := postTo(t, srv.URL, WEpayoutWebhookPath, h, paid); code != http.StatusOK {
		t.Fatalf("altered status: %d", code)
	}
	evs := f.statusEvents()
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[PENDING]" {
		t.Fatalf("altered status emitted %v, want WEpayout's [PENDING]", got)
	}
	checkSingle(t, evs[0], rail.WEpayout, r, pid, payout.SourceWebhook)
}

// Status 7 (Awaiting) maps to PENDING: a late one after 3 (Paid) emits
// nothing, and a redelivered (payment, status) pair is a duplicate.
func TestWEpayoutLateAwaitingAfterPaidEmitsNothing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	r := f.wepPayout(srv.URL, "07") // 7, 2, 3
	f.handOff(s.wepc, r)
	s.wep.Advance(time.Second)
	s.wait(t)
	h7, body7, err := s.wep.SignedWebhook(r.ID)
	if err != nil || !bytes.Contains(body7, []byte(`"status":{"id":7`)) {
		t.Fatalf("status 7 webhook: %s %v", body7, err)
	}
	for range 2 {
		s.wep.Advance(time.Second)
		s.wait(t)
	}
	h3, body3, err := s.wep.SignedWebhook(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := f.statusEvents()
	if got := statusesOf(before, r.ID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("%v", got)
	}
	for _, w := range []struct {
		h    http.Header
		body []byte
	}{{h7, body7}, {h3, body3}} {
		if code := postTo(t, srv.URL, WEpayoutWebhookPath, w.h, w.body); code != http.StatusOK {
			t.Fatalf("late webhook: %d", code)
		}
	}
	after := f.statusEvents()
	if len(after) != len(before) {
		t.Fatalf("late webhooks emitted %d more events", len(after)-len(before))
	}
	checkLog(t, after)
	if got := testutil.ToFloat64(e.m.railWebhooks.WithLabelValues("wepayout", ResultDuplicate)); got < 2 {
		t.Errorf("duplicates: %v", got)
	}
}

// A rail without a client: its webhooks get 404, its scheduled payouts are
// rescheduled (not dropped) and counted as poll errors.
func TestSingleRailNotEnabled(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.engine(nil) // Wompi only
	r := f.sfpPayout(srv.URL, "00")
	id := rail.HandOffID(rail.SmartFastPay, f.handOff(s.sfpc, r))
	if code := postTo(t, srv.URL, SmartFastPayWebhookPath, nil, []byte(`{}`)); code != http.StatusNotFound {
		t.Fatalf("webhook of a rail not enabled: %d", code)
	}
	if code := postTo(t, srv.URL, WEpayoutWebhookPath, nil, []byte(`{}`)); code != http.StatusNotFound {
		t.Fatalf("webhook of a rail not enabled: %d", code)
	}
	ctx := context.Background()
	res, err := e.PollOnce(ctx)
	if err != nil || res.Claimed != 1 || res.Errors != 1 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	score, err := f.redis.Client().ZScore(ctx, f.prefix+"{poll}", id).Result()
	if err != nil || int64(score) < f.clock.Now().Add(e.cfg.PollMaxBackoff).UnixMilli() {
		t.Fatalf("%s not rescheduled PollMaxBackoff later: %v %v", id, score, err)
	}
	if got := testutil.ToFloat64(e.m.railWebhooks.WithLabelValues("smartfastpay", ResultRailNotEnabled)); got != 1 {
		t.Errorf("rail_not_enabled: %v", got)
	}
}

// Without a hand-off (lost with Redis, or expired), a genuine webhook is
// resolved through the provider: our id and amount are the provider's, no
// batch is known, and a payout that is not final is put on the polling
// schedule so that its end is caught even if its webhook is lost. The
// sweep puts a handed-off single payout dropped from the schedule back.
func TestSingleRailWebhookWithoutHandOff(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	sr, wr := f.sfpPayout(srv.URL, "98"), f.wepPayout(srv.URL, "99") // both stay pending
	sp, err := s.sfpc.Create(ctx, sr)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := s.wepc.Create(ctx, wr)
	if err != nil {
		t.Fatal(err)
	}
	s.sfp.Advance(time.Second)
	s.wep.Advance(time.Second)
	s.wait(t)
	evs := f.statusEvents()
	if len(evs) != 2 {
		t.Fatalf("%d events, want the PENDING of each", len(evs))
	}
	for _, ev := range evs {
		want := map[string]string{sr.ID: sp.ProviderID, wr.ID: wp.ProviderID}[ev.RequestID]
		if ev.Status != payout.StatusPending || deref(ev.TransactionID) != want || ev.BatchID != nil || ev.PayoutID != nil {
			t.Errorf("event: %+v", ev)
		}
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 2 {
		t.Fatalf("scheduled: %d %v, want both", n, err)
	}
	// Both end; their webhooks are lost; the poll catches them.
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.settle(t, wr.ID, "6:WE0002", sr.ID, smartfastpay.StatusFailed)
	f.clock.Advance(time.Minute)
	if res, err := e.PollOnce(ctx); err != nil || res.Done != 2 || res.Transitions != 2 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	evs = f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, sr.ID); fmt.Sprint(got) != "[PENDING FAILED]" {
		t.Errorf("%s: %v", sr.ID, got)
	}
	if got := statusesOf(evs, wr.ID); fmt.Sprint(got) != "[PENDING CANCELLED]" {
		t.Errorf("%s: %v", wr.ID, got)
	}
	for _, ev := range evs {
		if ev.RequestID == wr.ID && ev.Status == payout.StatusCancelled && (deref(ev.ReasonCode) != "WE0002" || ev.Source != payout.SourcePoll) {
			t.Errorf("cancelled: %+v", ev)
		}
	}
}

func TestSweepPutsBackSinglePayouts(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	r := f.wepPayout(srv.URL, "99")
	id := rail.HandOffID(rail.WEpayout, f.handOff(s.wepc, r))
	if err := f.sub.Done(ctx, id); err != nil { // a partial Redis loss dropped its entry
		t.Fatal(err)
	}
	if err := f.sub.MarkReady(ctx); err != nil { // but kept the ready marker: no rebuild
		t.Fatal(err)
	}
	res, err := e.PollOnce(ctx)
	if err != nil || res.Swept != 1 || res.Claimed != 1 || res.Errors != 0 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING]" {
		t.Fatalf("%v", got)
	}
}
