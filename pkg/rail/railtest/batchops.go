package railtest

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// BatchRailHarness adapts a batch rail to the suite of what the dispatcher
// needs besides BatchPayouts (rail.BatchRail). Its BatchHarness's New
// must return a rail.BatchRail.
type BatchRailHarness struct {
	BatchHarness
	// Today is the rail's business day (YYYY-MM-DD) by the simulator's
	// clock.
	Today func() string
	// KnownBankCode is a bank code the rail pays into; UnknownBankCode one
	// it does not know.
	KnownBankCode, UnknownBankCode string
	// Unhealthy makes the simulator say it is unhealthy (on Wompi, GET
	// /health answers 503 with an UNHEALTHY payload) until heal is called;
	// PartialOutage, when set, makes it say so.
	Unhealthy, PartialOutage func(sim BatchSim) (heal func())
	// DeferredReasons gives, for each of BatchHarness.Refusals whose Want
	// is Deferred (by name), the reason its error must carry. Each such
	// refusal must have one.
	DeferredReasons map[string]payout.Reason
}

// RunBatchRail runs the suite of rail.BatchRail's own interfaces.
func RunBatchRail(t *testing.T, h BatchRailHarness) {
	ctx := context.Background()
	newRail := func(t *testing.T) (rail.BatchRail, BatchSim) {
		t.Helper()
		c, sim := h.New(t)
		br, ok := c.(rail.BatchRail)
		if !ok {
			t.Fatalf("%T is not a rail.BatchRail", c)
		}
		return br, sim
	}
	ref := func(s string) string { return newRef(h.Rail, s) }
	// background returns reads run under the test's life, counted.
	background := func(t *testing.T) (rail.Background, func() int) {
		life, kill := context.WithCancelCause(context.Background())
		var wg sync.WaitGroup
		var mu sync.Mutex
		reads := 0
		t.Cleanup(func() { kill(context.Canceled); wg.Wait() })
		return rail.Background{Life: life, Timeout: time.Minute, Go: wg.Go, Observe: func(string, time.Time, error) {
				mu.Lock()
				reads++
				mu.Unlock()
			}}, func() int {
				mu.Lock()
				defer mu.Unlock()
				return reads
			}
	}

	t.Run("bank directory: known and unknown codes, one shared first read", func(t *testing.T) {
		c, _ := newRail(t)
		bg, reads := background(t)
		codes := []string{h.KnownBankCode, h.UnknownBankCode, h.KnownBankCode}
		const callers = 8
		got := make([][]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { got[i], errs[i] = c.BankIDs(ctx, bg, codes) })
		}
		wg.Wait()
		for i := range callers {
			if errs[i] != nil || len(got[i]) != 3 {
				t.Fatalf("caller %d: %v %v", i, got[i], errs[i])
			}
			if got[i][0] == "" || got[i][0] != got[i][2] || got[i][1] != "" {
				t.Fatalf("caller %d: %q: want the known code's id twice and \"\" for the unknown one", i, got[i])
			}
			if !slices.Equal(got[i], got[0]) {
				t.Fatalf("callers disagree: %q and %q", got[0], got[i])
			}
		}
		if n := reads(); n < 1 || n > 2 {
			t.Fatalf("%d observed reads for %d callers: want the first read shared (and at most one more for the unknown code)", n, callers)
		}
		// The id it gives is what a create takes, and it wins over a code.
		r := ref("bankid")
		req := h.Request(r, itemIDs(r, 1), 100_00)
		req.Items[0].Payee.BankCode = h.UnknownBankCode
		req.Items[0].ProviderBankID = got[0][0]
		if _, err := c.CreateBatch(ctx, "key-"+r, req); err != nil {
			t.Fatalf("a create with the directory's bank id: %v", err)
		}
	})

	t.Run("usage of the day counts a batch sent", func(t *testing.T) {
		c, _ := newRail(t)
		day := h.Today()
		u0, err := c.UsageOn(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		n0, err := c.BatchesListedOn(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		r := ref("usage")
		req := h.Request(r, itemIDs(r, 2), 300_00)
		var amount int64
		for _, it := range req.Items {
			amount += it.AmountInCents
		}
		if _, err := c.CreateBatch(ctx, "key-"+r, req); err != nil {
			t.Fatal(err)
		}
		u1, err := c.UsageOn(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		if u1.Day != "" && u1.Day != day {
			t.Fatalf("usage of %s answered for %s", day, u1.Day)
		}
		if u1.ConsumedInCents < u0.ConsumedInCents+amount {
			t.Fatalf("consumed %d then %d after a batch of %d", u0.ConsumedInCents, u1.ConsumedInCents, amount)
		}
		for _, a := range u1.Accounts {
			if a.AccountID == req.OriginAccountID && a.ConsumedInCents < amount {
				t.Fatalf("account %s consumed %d after a batch of %d", a.AccountID, a.ConsumedInCents, amount)
			}
		}
		if u1.Day != "" && u1.Batches != 0 && u1.Batches < u0.Batches+1 {
			t.Fatalf("batches sent: %d then %d", u0.Batches, u1.Batches)
		}
		if n1, err := c.BatchesListedOn(ctx, day); err != nil || n1 < n0+1 {
			t.Fatalf("batches listed on %s: %d then %d (%v)", day, n0, n1, err)
		}
	})

	t.Run("item refs map every item, every page, as Items does", func(t *testing.T) {
		c, _ := newRail(t)
		r := ref("refs")
		n := 2*h.PageSize + 1
		rids := itemIDs(r, n)
		b, err := c.CreateBatch(ctx, "key-"+r, h.Request(r, rids, 100_00))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]rail.ItemRef{}
		for p, err := range c.Items(ctx, b.ProviderID) {
			if err != nil {
				t.Fatal(err)
			}
			want[p.ID] = rail.ItemRef{ID: p.ID, ProviderID: p.ProviderID, Status: p.Status, ProviderStatus: p.ProviderStatus}
		}
		got := map[string]rail.ItemRef{}
		for ir, err := range c.ItemRefs(ctx, b.ProviderID) {
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := got[ir.ID]; dup {
				t.Fatalf("%s listed twice", ir.ID)
			}
			got[ir.ID] = ir
		}
		if len(got) != n {
			t.Fatalf("%d item refs, want %d", len(got), n)
		}
		for _, id := range rids {
			// The status too: the dispatcher emits PENDING from it, as
			// the tracker would from Items.
			if got[id].ProviderID == "" || got[id] != want[id] || got[id].Status == "" {
				t.Fatalf("item %s: ref %+v, Items says %+v", id, got[id], want[id])
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		c, sim := newRail(t)
		if s, err := c.Health(ctx); err != nil || s != rail.Healthy {
			t.Fatalf("a healthy simulator: %q %v", s, err)
		}
		heal := h.Unhealthy(sim)
		if s, err := c.Health(ctx); err != nil || s != rail.Unhealthy {
			t.Fatalf("an unhealthy simulator: %q %v, want UNHEALTHY (an answer, not an error)", s, err)
		}
		heal()
		if h.PartialOutage != nil {
			heal := h.PartialOutage(sim)
			if s, err := c.Health(ctx); err != nil || s != rail.PartialOutage {
				t.Fatalf("a partial outage: %q %v", s, err)
			}
			heal()
		}
		if s, err := c.Health(ctx); err != nil || s != rail.Healthy {
			t.Fatalf("healed: %q %v", s, err)
		}
	})

	t.Run("a refusal for now names its reason, masked", func(t *testing.T) {
		digits := regexp.MustCompile(`\d{6,}`)
		n := 0
		for _, rf := range h.Refusals {
			if rf.Want != rail.Deferred {
				continue
			}
			n++
			want, ok := h.DeferredReasons[rf.Name]
			if !ok {
				t.Errorf("%s: no reason in the harness", rf.Name)
				continue
			}
			c, _ := newRail(t)
			var bp rail.BatchPayouts = c
			if rf.New != nil {
				bp, _ = rf.New(t)
			}
			if rf.Prepare != nil {
				rf.Prepare(t, bp)
			}
			r := ref("reason")
			_, err := bp.CreateBatch(ctx, "key-"+r, rf.Request(r, itemIDs(r, 2)))
			var re *rail.Error
			if !errors.As(err, &re) || re.Class != rail.Deferred || re.Reason != want {
				t.Errorf("%s: %v: want Deferred with reason %s", rf.Name, err, want)
				continue
			}
			if re.Message == "" || digits.MatchString(re.Message) {
				t.Errorf("%s: message %q: want the provider's, masked", rf.Name, re.Message)
			}
		}
		if n == 0 {
			t.Error("no Deferred refusal in the harness")
		}
	})
}
