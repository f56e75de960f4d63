package track

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A WEpayout webhook's signature covers only the invoice, the currency
// and the amount: the body's payment id is not signed. An id that WEpayout
// resolves to the same payment but that reads differently ("0100001" for
// 100001: the simulator parses it as an integer, as a MySQL-backed API
// would) would name a transaction the status key has never seen; after a
// FAILED (or CANCELLED) a different transaction id restarts the request's
// life, so a replay of the genuine webhook with that id emitted a second
// FAILED under a new eventId: two final statuses for one request, which a
// marketplace that re-requests on FAILED acts on twice. The tracker now
// refuses a webhook whose id WEpayout answers as another text (401).
func TestWEpayoutWebhookWithAnotherTextOfTheIDIsRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	_, srv := f.singleEngine(s, nil)
	r := f.wepPayout(srv.URL, "05") // 5 Rejected: FAILED WEPAYOUT_5
	pid := f.handOff(s.wepc, r)
	for range 2 {
		s.wep.Advance(time.Second)
		s.wait(t)
	}
	evs := f.statusEvents()
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[PENDING FAILED]" {
		t.Fatalf("setup: %v", got)
	}
	// A genuine webhook of this payment (its header is the same for every
	// webhook of the payment), replayed with the id as a zero-padded string.
	h, body, err := s.wep.SignedWebhook(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	variant := bytes.Replace(body, []byte(`"id":`+pid), []byte(`"id":"0`+pid+`"`), 1)
	if bytes.Equal(variant, body) {
		t.Fatalf("body shape: %s", body)
	}
	code := postTo(t, srv.URL, WEpayoutWebhookPath, h, variant)
	if code != http.StatusUnauthorized {
		t.Errorf("webhook with the id as another text answered %d, want 401", code)
	}
	evs = f.statusEvents()
	t.Logf("replayed webhook with id \"0%s\": HTTP %d; statuses now %v", pid, code, statusesOf(evs, r.ID))
	for _, ev := range evs {
		if ev.RequestID == r.ID {
			t.Logf("  %s tx=%s eventId=%s", ev.Status, deref(ev.TransactionID), ev.EventID)
		}
	}
	finals := map[string]bool{}
	for _, ev := range evs {
		if ev.RequestID == r.ID && ev.Status.Final() {
			finals[ev.EventID] = true
		}
	}
	if len(finals) != 1 {
		t.Errorf("request %s has %d final events with distinct eventIds, want 1", r.ID, len(finals))
	}
	if err := payout.CheckLifecycles(evs); err != nil {
		t.Error(err)
	}
}

// The same unsigned id, replayed once while the payment is still
// processing: nothing is emitted then (PENDING is a duplicate), and the
// variant must not be enrolled on the polling schedule as a payout without
// a hand-off ("wepayout:0<id>"): when WEpayout later failed the payment,
// the genuine webhook emitted FAILED and the poll of the enrolled variant
// a second FAILED under another transaction id and eventId. A variant
// already on the schedule (enrolled by a tracker from before the check)
// is polled, and WEpayout answers it as the payment: nothing is emitted
// under it.
func TestWEpayoutIDVariantNeverEmits(t *testing.T) {
	for _, how := range []string{"replayed webhook", "enrolled before"} {
		t.Run(how, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			s := newSingles(t)
			e, srv := f.singleEngine(s, nil)
			ctx := context.Background()
			r := f.wepPayout(srv.URL, "99") // stays processing
			pid := f.handOff(s.wepc, r)
			s.wep.Advance(time.Second)
			s.wait(t)
			wantScheduled := int64(1)
			if how == "replayed webhook" {
				h, body, err := s.wep.SignedWebhook(r.ID)
				if err != nil {
					t.Fatal(err)
				}
				variant := bytes.Replace(body, []byte(`"id":`+pid), []byte(`"id":"0`+pid+`"`), 1)
				if code := postTo(t, srv.URL, WEpayoutWebhookPath, h, variant); code != http.StatusUnauthorized {
					t.Errorf("replay while pending answered %d, want 401", code)
				}
			} else {
				e.enroll(ctx, rail.WEpayout, "0"+pid, payout.StatusPending)
				wantScheduled = 2
			}
			if n, _ := f.sub.Scheduled(ctx); n != wantScheduled {
				t.Errorf("%d payouts scheduled, want %d", n, wantScheduled)
			}
			if err := s.wep.SetStatus(r.ID, "4"); err != nil {
				t.Fatal(err)
			}
			s.wait(t)
			f.clock.Advance(time.Minute)
			if _, err := e.PollOnce(ctx); err != nil {
				t.Logf("poll: %v", err)
			}
			evs := f.statusEvents()
			if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[PENDING FAILED]" {
				t.Errorf("statuses %v, want [PENDING FAILED]", got)
			}
			for _, ev := range evs {
				if ev.RequestID == r.ID && deref(ev.TransactionID) != pid {
					t.Errorf("%s emitted under transaction %s, want %s", ev.Status, deref(ev.TransactionID), pid)
				}
			}
			if err := payout.CheckLifecycles(evs); err != nil {
				t.Error(err)
			}
		})
	}
}
