package track

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// The pair: a requestId paid by X in an earlier life is sent again after
// DEDUPE_WINDOW (its status key run out), and paid with Y, handed off,
// which fails; Y's failure is read while the rail's lookup by our id is
// served from a copy from before Y was made (it lists X only). The
// adopted payout's creation is then unknown, so X, paid in the earlier
// life, counted as a payout that may still pay, and was put on the
// polling schedule: its poll emitted its APPROVED (the earlier life's
// eventId) into the second life, and Y's FAILED, once the lookup caught
// up, was refused after it (or followed it as another life). The second
// life's FAILED was lost: the request read APPROVED though Y paid nothing.
func TestAdoptedFailureWithLookupBehindDoesNotRevivePaidEarlierLife(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	lb := sfpLookupBehind()
	lagging := s.sfp.Client(func(cfg *smartfastpay.Config) {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: lb}
	})
	e, srv := f.singleEngine(s, func(cfg *Config) { cfg.SmartFastPay = lagging })
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "00")
	if _, err := s.sfpc.Create(ctx, r); err != nil { // X, paid (its callbacks emit its statuses)
		t.Fatal(err)
	}
	for range 5 {
		s.sfp.Advance(time.Minute)
	}
	s.wait(t)
	if st, _ := s.sfp.Status(r.ID); st != smartfastpay.StatusSuccess {
		t.Fatalf("X at SmartFastPay: %s", st)
	}
	f.clock.Advance(25 * time.Hour) // X's return watch ends
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Fatalf("scheduled after X's watch: %d %v", n, err)
	}
	first := statusesOf(f.statusEvents(), r.ID)
	if len(first) == 0 || first[len(first)-1] != payout.StatusApproved {
		t.Fatalf("first life: %v", first)
	}
	// Sent again 31 days later: the request's status key has run out.
	s.sfp.Advance(31 * 24 * time.Hour)
	f.clock.Advance(31 * 24 * time.Hour)
	if err := f.redis.Client().Del(ctx, e.statuses.key(kindRequest, r.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	// The lookup by our id is served from a copy taken now (X only).
	if ps, err := lagging.Find(ctx, r.ID); err != nil || len(ps) != 1 {
		t.Fatalf("lookup: %v %v", ps, err)
	}
	lb.arm(true)
	f.handOff(s.sfpc, r) // Y
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t) // Y's callbacks, read against the copy behind
	lb.arm(false)
	for range 5 {
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := statusesOf(f.statusEvents(), r.ID)[len(first):]
	if len(got) == 0 || got[len(got)-1] != payout.StatusFailed {
		t.Fatalf("%s: second life %v: Y's FAILED is not its last status (X's APPROVED of the first life emitted into it)", r.ID, got)
	}
	for _, st := range got {
		if st == payout.StatusApproved {
			t.Fatalf("%s: second life %v: the earlier life's APPROVED emitted again", r.ID, got)
		}
	}
}

// The hold itself: X (its answer lost, never handed off) pays, Y (handed
// off) fails, and Y's failure is read while the lookup by our id is served
// from a copy from before Y was made (X only). The lookup cannot tell
// whether X may still pay: Y's FAILED must wait (not be emitted at once),
// and once the lookup lists both, X's APPROVED ends the request.
func TestAdoptedFailureWaitsWhileTheLookupDoesNotListIt(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	lb := sfpLookupBehind()
	lagging := s.sfp.Client(func(cfg *smartfastpay.Config) {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: lb}
	})
	e, srv := f.singleEngine(s, func(cfg *Config) { cfg.SmartFastPay = lagging })
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "00")
	if _, err := s.sfpc.Create(ctx, r); err != nil { // X
		t.Fatal(err)
	}
	if ps, err := lagging.Find(ctx, r.ID); err != nil || len(ps) != 1 { // the copy: X only
		t.Fatalf("lookup: %v %v", ps, err)
	}
	lb.arm(true)
	f.handOff(s.sfpc, r) // Y: the lookup missed X
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusFailed); err != nil {
		t.Fatal(err)
	}
	s.wait(t) // Y's FAILED callback, read against the copy behind
	if got := statusesOf(f.statusEvents(), r.ID); slices.Contains(got, payout.StatusFailed) {
		t.Fatalf("%s: %v: Y's FAILED emitted while the lookup did not list Y", r.ID, got)
	}
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1}) // X's callbacks are lost
	lb.arm(false)
	for range 10 {
		s.sfp.Advance(time.Minute)
		s.wait(t)
		f.clock.Advance(time.Minute)
		if _, err := e.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := statusesOf(f.statusEvents(), r.ID)
	if len(got) == 0 || got[len(got)-1] != payout.StatusApproved || slices.Contains(got, payout.StatusFailed) {
		t.Fatalf("%s: %v: want X's APPROVED last and no FAILED", r.ID, got)
	}
}
