package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// failureOfOther's first test: the request's status key follows Y, the
// payment the dispatcher adopted, and the rail's lookup by our id is served
// from a copy taken after X was made and before Y was (it lists X alone,
// still processing). X, whose answer was lost (no hand-off), fails. Asked
// alone, the lookup finds no other payment that may pay, and X's FAILED
// would be emitted while Y pays; Y's APPROVED then follows as a new life,
// and the marketplace, which asks again on a FAILED, pays twice. The key
// following another payout keeps the failure back whatever the lookup
// lists.
func TestNonAdoptedFailureWhileTheKeyFollowsTheAdoptedAndTheLookupMissesIt(t *testing.T) {
	webhookAndPoll(t, func(t *testing.T, byPoll bool) {
		f := newFixture(t, fixtureOpts{})
		s := newSingles(t)
		lb := wepLookupBehind()
		lagging := s.wep.Client(wepayout.Config{HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: lb}})
		e, srv := f.singleEngine(s, func(c *Config) { c.WEpayout = lagging })
		s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1}) // webhooks posted by hand below
		ctx := context.Background()
		r := f.wepPayout(srv.URL, "99")
		x, err := s.wepc.Create(ctx, r) // its answer lost: no hand-off
		if err != nil {
			t.Fatal(err)
		}
		if ps, err := lagging.Find(ctx, r.ID); err != nil || len(ps) != 1 { // the copy the lookup is served from: X alone
			t.Fatalf("lookup: %v %v", ps, err)
		}
		lb.arm(true)
		if err := s.wep.SetStatus(r.ID, "4"); err != nil { // X fails
			t.Fatal(err)
		}
		s.wait(t)
		xh, xbody, err := s.wep.SignedWebhook(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.handOff(s.wepc, r) // Y: posted and adopted
		if ps, err := lagging.Find(ctx, r.ID); err != nil || len(ps) != 1 || ps[0].ProviderID != x.ProviderID {
			t.Fatalf("the lookup behind lists X alone: %v %v", ps, err)
		}
		f.deliverWEPWebhook(s, srv.URL, r.ID) // Y's PENDING: the key follows Y
		f.otherFailureArrives(e, s, srv.URL, byPoll, x.ProviderID, xh, xbody)
		f.adoptedPays(s, srv.URL, r.ID)
	})
}
