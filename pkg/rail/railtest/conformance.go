// Package railtest holds the conformance suites every rail's client and
// simulator pass together (Watermill's pattern: one suite, many
// implementations): RunSinglePayouts for single-payout rails, with a
// Harness, and RunBatchPayouts (batches.go) for batch rails, with a
// BatchHarness. A rail's package runs its suite from a test with a harness
// that wires its client to its in-process simulator.
package railtest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Sim is what the suite needs of a rail's simulator.
type Sim interface {
	// Accepted is the simulator's ledger: how many payouts it created for
	// our id (a second POST with the same id is accepted and counted).
	Accepted(id string) int
	// DropNextCreateResponse makes the next create apply, then lose its
	// answer (the connection closes with no response).
	DropNextCreateResponse()
	// FailNext makes the next API call answer status before doing
	// anything. A 401 or 403 stands for credentials that stopped working:
	// a token refresh the client makes in between is refused too (a rail
	// whose client refreshes once on a 401 must still end Unauthorized).
	FailNext(status int)
	// SetStatus moves the payout with our id to a provider status.
	SetStatus(id, providerStatus string) error
	// SignedWebhook returns the headers and body of a genuine webhook for
	// the payout with our id, in its current status.
	SignedWebhook(id string) (http.Header, []byte, error)
}

// Harness adapts one rail to the suite.
type Harness struct {
	Rail rail.Name
	// New returns a fresh client wired to a fresh simulator.
	New func(t *testing.T) (rail.SinglePayouts, Sim)
	// Request returns a valid payout request with our id and amount.
	Request func(id string, amountInCents int64) rail.PayoutRequest
	// Invalid returns a request the provider refuses as invalid.
	Invalid func(id string) rail.PayoutRequest
	// Verify checks a webhook as the tracker does (rec is our record of the
	// payout: what was sent) and returns the event it carries.
	Verify func(h http.Header, body []byte, rec rail.PayoutRequest) (rail.Payout, error)
	// Statuses maps each provider status the simulator can set to the
	// pipeline status it must map to ("" for one that maps to nothing).
	Statuses map[string]payout.Status
	// PageSize is the listing's page size, so the suite can create more
	// payouts than one page holds.
	PageSize int
}

// RunSinglePayouts runs the suite.
func RunSinglePayouts(t *testing.T, h Harness) {
	ctx := context.Background()
	id := func(t *testing.T, s string) string {
		return fmt.Sprintf("%s-%s-%d", h.Rail, s, time.Now().UnixNano()%1e9)
	}

	t.Run("create, get and find by our id", func(t *testing.T) {
		c, sim := h.New(t)
		rid := id(t, "create")
		p, err := c.Create(ctx, h.Request(rid, 12345))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if p.ProviderID == "" || p.Status != payout.StatusPending {
			t.Fatalf("create answered %+v: want a provider id and PENDING", p)
		}
		g, err := c.Get(ctx, p.ProviderID)
		if err != nil || g.ID != rid || g.AmountInCents != 12345 || g.Status != payout.StatusPending {
			t.Fatalf("get: %+v %v: want our id, 12345 cents, PENDING", g, err)
		}
		found, err := c.Find(ctx, rid)
		if err != nil || len(found) != 1 || found[0].ProviderID != p.ProviderID {
			t.Fatalf("find by our id: %+v %v: want the one payout", found, err)
		}
		if n := sim.Accepted(rid); n != 1 {
			t.Fatalf("ledger: %d payouts for %s, want 1", n, rid)
		}
		if c.Rail() != h.Rail {
			t.Fatalf("Rail() = %s", c.Rail())
		}
	})

	t.Run("absent id is proven absent", func(t *testing.T) {
		c, _ := h.New(t)
		found, err := c.Find(ctx, id(t, "absent"))
		if err != nil || len(found) != 0 {
			t.Fatalf("find of an id never sent: %+v %v", found, err)
		}
		if _, err := c.Get(ctx, "999999999"); err == nil {
			t.Fatal("get of an unknown provider id succeeded")
		}
	})

	t.Run("lost answer: outcome unknown, then found", func(t *testing.T) {
		c, sim := h.New(t)
		rid := id(t, "lost")
		sim.DropNextCreateResponse()
		_, err := c.Create(ctx, h.Request(rid, 5000))
		if err == nil || rail.ClassOf(err) != rail.OutcomeUnknown {
			t.Fatalf("create with a lost answer: %v (class %s), want outcome_unknown", err, rail.ClassOf(err))
		}
		found, err := c.Find(ctx, rid)
		if err != nil || len(found) != 1 {
			t.Fatalf("find after the lost answer: %+v %v: want the payout that landed", found, err)
		}
		if n := sim.Accepted(rid); n != 1 {
			t.Fatalf("ledger: %d payouts, want 1", n)
		}
	})

	t.Run("the simulator pays a second POST with the same id", func(t *testing.T) {
		c, sim := h.New(t)
		rid := id(t, "twice")
		for range 2 {
			if _, err := c.Create(ctx, h.Request(rid, 700)); err != nil {
				t.Fatalf("create: %v", err)
			}
		}
		if n := sim.Accepted(rid); n != 2 {
			t.Fatalf("ledger counts %d payouts for one id POSTed twice, want 2 (the oracle must see doubles)", n)
		}
		if found, err := c.Find(ctx, rid); err != nil || len(found) != 2 {
			t.Fatalf("find: %d payouts %v, want 2", len(found), err)
		}
	})

	t.Run("many ids in one lookup answer as Find does", func(t *testing.T) {
		c, _ := h.New(t)
		mf, ok := c.(rail.ManyFinder)
		if !ok {
			t.Skipf("%s looks payees up one by one (no rail.ManyFinder)", h.Rail)
		}
		// More payouts than a page of MaxFindMany holds, three ids posted
		// twice, and ids never sent, in one lookup of the most ids it takes.
		max := mf.MaxFindMany()
		var ids []string
		for i := range max - 2 {
			rid := id(t, fmt.Sprint("many", i))
			ids = append(ids, rid)
			if _, err := c.Create(ctx, h.Request(rid, int64(100+i))); err != nil {
				t.Fatalf("create: %v", err)
			}
		}
		for _, rid := range ids[:3] { // max+1 payouts: more than a page of max
			if _, err := c.Create(ctx, h.Request(rid, 100)); err != nil {
				t.Fatalf("create: %v", err)
			}
		}
		ids = append(ids, id(t, "many-absent-1"), id(t, "many-absent-2"))
		got, err := mf.FindMany(ctx, ids)
		if err != nil {
			t.Fatalf("find many: %v", err)
		}
		for _, rid := range ids {
			want, err := c.Find(ctx, rid)
			if err != nil {
				t.Fatalf("find %s: %v", rid, err)
			}
			if len(got[rid]) != len(want) {
				t.Fatalf("%s: FindMany found %d payouts, Find %d", rid, len(got[rid]), len(want))
			}
			for _, p := range got[rid] {
				if p.ID != rid || !slices.ContainsFunc(want, func(w rail.Payout) bool { return w.ProviderID == p.ProviderID }) {
					t.Fatalf("%s: FindMany answered %+v, Find %+v", rid, got[rid], want)
				}
			}
		}
		if len(got[ids[2]]) != 2 || len(got[ids[len(ids)-1]]) != 0 || len(got) != max-2 {
			t.Fatalf("find many: %d ids found, a doubled one %d times: want %d ids, 2 times", len(got), len(got[ids[2]]), max-2)
		}
		if _, err := mf.FindMany(ctx, append(ids, id(t, "one-too-many"))); err == nil {
			t.Fatalf("a lookup of %d ids succeeded: it takes %d at most", len(ids)+1, max)
		}
	})

	t.Run("error classes", func(t *testing.T) {
		c, sim := h.New(t)
		cases := []struct {
			name   string
			status int
			create bool
			want   rail.Class
		}{
			{"503 on a create", http.StatusServiceUnavailable, true, rail.OutcomeUnknown},
			{"503 on a read", http.StatusServiceUnavailable, false, rail.Retryable},
			{"429 on a read", http.StatusTooManyRequests, false, rail.Retryable},
			{"401 on a create", http.StatusUnauthorized, true, rail.Unauthorized},
			{"403 on a read", http.StatusForbidden, false, rail.Unauthorized},
		}
		for _, tc := range cases {
			sim.FailNext(tc.status)
			if !tc.create && tc.status != http.StatusTooManyRequests && tc.want == rail.Retryable {
				// A listing page is asked for again ListPageRetries times
				// (not after a 429).
				for range rail.ListPageRetries {
					sim.FailNext(tc.status)
				}
			}
			var err error
			if tc.create {
				_, err = c.Create(ctx, h.Request(id(t, "class"), 100_00))
			} else {
				_, err = c.Find(ctx, id(t, "class"))
			}
			if err == nil || rail.ClassOf(err) != tc.want {
				t.Errorf("%s: %v (class %s), want %s", tc.name, err, rail.ClassOf(err), tc.want)
			}
		}
		sim.FailNext(http.StatusServiceUnavailable)
		if _, err := c.Find(ctx, id(t, "class")); err != nil {
			t.Errorf("a lookup whose page failed once: %v, want the page asked for again", err)
		}
		rid := id(t, "invalid")
		_, err := c.Create(ctx, h.Invalid(rid))
		if err == nil || rail.ClassOf(err) != rail.Rejected {
			t.Errorf("invalid payee: %v (class %s), want rejected", err, rail.ClassOf(err))
		}
		if n := sim.Accepted(rid); n != 0 {
			t.Errorf("an invalid payee was accepted %d times", n)
		}
	})

	t.Run("status mapping", func(t *testing.T) {
		c, sim := h.New(t)
		for ps, want := range h.Statuses {
			rid := id(t, "st")
			p, err := c.Create(ctx, h.Request(rid, 100_00))
			if err != nil {
				t.Fatal(err)
			}
			if err := sim.SetStatus(rid, ps); err != nil {
				t.Fatalf("set %s: %v", ps, err)
			}
			g, err := c.Get(ctx, p.ProviderID)
			if err != nil {
				t.Fatal(err)
			}
			if g.Status != want {
				t.Errorf("provider status %s maps to %q, want %q", ps, g.Status, want)
			}
		}
	})

	t.Run("pagination", func(t *testing.T) {
		c, _ := h.New(t)
		n := h.PageSize + h.PageSize/2 + 1
		from := time.Now().Add(-time.Hour)
		want := map[string]bool{}
		for i := range n {
			rid := id(t, fmt.Sprintf("page%d", i))
			// At least 2.00 in the payout's currency, the smallest any rail
			// takes.
			if _, err := c.Create(ctx, h.Request(rid, int64(200+i))); err != nil {
				t.Fatal(err)
			}
			want[rid] = true
		}
		got := map[string]int{}
		for p, err := range c.List(ctx, rail.ListFilter{From: from, To: time.Now().Add(time.Hour)}) {
			if err != nil {
				t.Fatal(err)
			}
			got[p.ID]++
		}
		for rid := range want {
			if got[rid] != 1 {
				t.Fatalf("listing shows %s %d times, want once (%d payouts over pages of %d)", rid, got[rid], n, h.PageSize)
			}
		}
	})

	t.Run("webhooks: genuine, forged, replayed", func(t *testing.T) {
		c, sim := h.New(t)
		rid := id(t, "hook")
		req := h.Request(rid, 4321)
		p, err := c.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		hdr, body, err := sim.SignedWebhook(rid)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := h.Verify(hdr, body, req)
		if err != nil || ev.ProviderID != p.ProviderID || ev.Status != payout.StatusPending {
			t.Fatalf("genuine webhook: %+v %v", ev, err)
		}
		if _, err := h.Verify(hdr, body, req); err != nil {
			t.Fatalf("a replayed genuine webhook must verify (dedupe is the tracker's): %v", err)
		}
		forged := append([]byte(nil), body...)
		for i := range forged {
			if forged[i] >= '0' && forged[i] <= '8' {
				forged[i]++
				break
			}
		}
		if _, err := h.Verify(hdr, forged, req); err == nil {
			t.Fatal("a webhook whose body was altered verified")
		}
		if _, err := h.Verify(http.Header{}, body, req); err == nil {
			t.Fatal("a webhook without its signature verified")
		}
		other := req
		other.AmountInCents++
		bad := hdr.Clone()
		for k := range bad {
			bad.Set(k, bad.Get(k)+"0")
		}
		if _, err := h.Verify(bad, body, other); err == nil {
			t.Fatal("a webhook with a wrong signature verified")
		}
	})
}
