package railtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// TrackingHarness adapts one batch rail to the tracking suite
// (RunBatchTracking). Its BatchHarness's New must return a
// rail.BatchTracking.
type TrackingHarness struct {
	BatchHarness
	// Refusals names, for each of BatchHarness.Forgeries and
	// MoreForgeries by its Name, the refusal VerifyWebhook must give.
	// Every forgery must have one.
	Refusals map[string]rail.WebhookRefusal
	// MoreForgeries are forgeries run by this suite only (the refusals
	// the batch suite does not ask for, a malformed signature block...).
	MoreForgeries []Forgery
	// RefusedFilter, when New is set, is a simulator that refuses Status
	// as a status filter value of BatchesByStatus.
	RefusedFilter struct {
		New    func(t *testing.T) (rail.BatchPayouts, BatchSim)
		Status payout.BatchStatus
	}
}

// RunBatchTracking runs the suite of what the tracker reads of a batch
// rail beyond BatchPayouts: GetBatch, Item and BatchesByStatus, their
// ErrNotFound, statuses and reasons already mapped, and the refusals
// VerifyWebhook names.
func RunBatchTracking(t *testing.T, h TrackingHarness) {
	ctx := context.Background()
	ref := func(s string) string { return newRef(h.Rail, s) }
	newRail := func(t *testing.T, n func(*testing.T) (rail.BatchPayouts, BatchSim)) (rail.BatchTracking, BatchSim) {
		t.Helper()
		c, sim := n(t)
		bt, ok := c.(rail.BatchTracking)
		if !ok {
			t.Fatalf("%T is no rail.BatchTracking", c)
		}
		return bt, sim
	}
	create := func(t *testing.T, c rail.BatchTracking, r rail.BatchRequest) rail.Batch {
		t.Helper()
		b, err := c.CreateBatch(ctx, "key-"+r.Reference, r)
		if err != nil {
			t.Fatalf("create %s: %v", r.Reference, err)
		}
		return b
	}
	items := func(t *testing.T, c rail.BatchTracking, providerID string) []rail.Payout {
		t.Helper()
		var out []rail.Payout
		for p, err := range c.Items(ctx, providerID) {
			if err != nil {
				t.Fatalf("items of %s: %v", providerID, err)
			}
			out = append(out, p)
		}
		return out
	}
	// sameItem: Item reads what Items lists (the message may be worded
	// differently by another endpoint; the code may not).
	sameItem := func(t *testing.T, got, want rail.Payout) {
		t.Helper()
		if got.ProviderID != want.ProviderID || got.ID != want.ID || got.Status != want.Status ||
			got.ProviderStatus != want.ProviderStatus || got.Reason != want.Reason || got.AmountInCents != want.AmountInCents {
			t.Fatalf("Item read %+v, Items listed %+v", got, want)
		}
	}
	list := func(t *testing.T, c rail.BatchTracking, since time.Time, statuses ...payout.BatchStatus) map[string]rail.Batch {
		t.Helper()
		out := map[string]rail.Batch{}
		for b, err := range c.BatchesByStatus(ctx, since, statuses...) {
			if err != nil {
				t.Fatalf("batches by status %v: %v", statuses, err)
			}
			if len(statuses) > 0 && !slices.Contains(statuses, b.Status) {
				t.Fatalf("batches by status %v listed %+v", statuses, b)
			}
			if _, dup := out[b.ProviderID]; dup {
				t.Fatalf("batches by status %v: %s listed twice", statuses, b.ProviderID)
			}
			out[b.ProviderID] = b
		}
		return out
	}

	t.Run("get a batch and its items by the provider's ids", func(t *testing.T) {
		c, _ := newRail(t, h.New)
		r := ref("get")
		req := h.Request(r, itemIDs(r, 3), 700_00)
		b := create(t, c, req)
		got, err := c.GetBatch(ctx, b.ProviderID)
		if err != nil {
			t.Fatalf("get batch %s: %v", b.ProviderID, err)
		}
		found, err := c.FindBatches(ctx, r)
		if err != nil || len(found) != 1 {
			t.Fatalf("find: %+v %v", found, err)
		}
		f := found[0]
		if got.ProviderID != b.ProviderID || got.Reference != r || got.Status != f.Status || got.Status == "" ||
			got.ProviderStatus != f.ProviderStatus || got.AmountInCents != 3*700_00+0+1+2 || got.ItemCount != 3 {
			t.Fatalf("get batch: %+v; find: %+v", got, f)
		}
		if got.PaymentType != req.PaymentType {
			t.Fatalf("get batch: payment type %q, sent %q", got.PaymentType, req.PaymentType)
		}
		if got.OriginAccountID != "" && got.OriginAccountID != req.OriginAccountID {
			t.Fatalf("get batch: origin account %q, sent %q (a rail that does not say leaves it empty)", got.OriginAccountID, req.OriginAccountID)
		}
		listed := items(t, c, b.ProviderID)
		if len(listed) != 3 {
			t.Fatalf("%d items, want 3", len(listed))
		}
		for _, want := range listed {
			p, err := c.Item(ctx, b.ProviderID, want.ProviderID)
			if err != nil {
				t.Fatalf("item %s of %s: %v", want.ProviderID, b.ProviderID, err)
			}
			sameItem(t, p, want)
			if !slices.ContainsFunc(req.Items, func(it rail.BatchItem) bool { return it.ID == p.ID }) {
				t.Fatalf("item %+v: want one of our requestIds as its ID", p)
			}
		}
	})

	t.Run("unknown ids, and a pair that does not exist, wrap ErrNotFound", func(t *testing.T) {
		c, _ := newRail(t, h.New)
		r1, r2 := ref("pair1"), ref("pair2")
		b1 := create(t, c, h.Request(r1, itemIDs(r1, 1), 100_00))
		b2 := create(t, c, h.Request(r2, itemIDs(r2, 1), 100_00))
		it1 := items(t, c, b1.ProviderID)[0]
		notFound := func(what string, err error) {
			t.Helper()
			var re *rail.Error
			if !errors.Is(err, rail.ErrNotFound) || !errors.As(err, &re) || re.Rail != h.Rail {
				t.Fatalf("%s: %v: want a *rail.Error wrapping rail.ErrNotFound", what, err)
			}
		}
		_, err := c.GetBatch(ctx, "no-such-batch-"+r1)
		notFound("get an unknown batch", err)
		_, err = c.Item(ctx, b1.ProviderID, "no-such-item-"+r1)
		notFound("an unknown item", err)
		// A webhook's batch id may be unsigned: an item read under another
		// batch must not be found.
		_, err = c.Item(ctx, b2.ProviderID, it1.ProviderID)
		notFound("an item under another batch", err)
		if p, err := c.Item(ctx, b1.ProviderID, it1.ProviderID); err != nil {
			t.Fatalf("the item under its own batch: %v", err)
		} else {
			sameItem(t, p, it1)
		}
	})

	t.Run("a failing provider is not ErrNotFound", func(t *testing.T) {
		c, sim := newRail(t, h.New)
		r := ref("fail")
		b := create(t, c, h.Request(r, itemIDs(r, 1), 100_00))
		it := items(t, c, b.ProviderID)[0]
		heal := sim.Fail(503)
		_, gerr := c.GetBatch(ctx, b.ProviderID)
		_, ierr := c.Item(ctx, b.ProviderID, it.ProviderID)
		var lerr error
		for _, err := range c.BatchesByStatus(ctx, time.Time{}, payout.BatchPending) {
			if err != nil {
				lerr = err
				break
			}
		}
		heal()
		for what, err := range map[string]error{"get batch": gerr, "item": ierr, "batches by status": lerr} {
			if err == nil || errors.Is(err, rail.ErrNotFound) || rail.ClassOf(err) != rail.Retryable {
				t.Errorf("%s while the provider answers 503: %v (class %s): want Retryable, not ErrNotFound", what, err, rail.ClassOf(err))
			}
		}
	})

	t.Run("statuses and reasons come mapped", func(t *testing.T) {
		for _, sc := range h.Statuses {
			t.Run(sc.Name, func(t *testing.T) {
				c, sim := newRail(t, h.New)
				r := ref("mapped")
				req := sc.Request(r, itemIDs(r, sc.Items))
				b := create(t, c, req)
				if got, err := c.GetBatch(ctx, b.ProviderID); err != nil || got.Status != sc.Pending {
					t.Fatalf("before settling: %+v %v: want %s", got, err, sc.Pending)
				}
				sim.Settle()
				got, err := c.GetBatch(ctx, b.ProviderID)
				if err != nil || got.Status != sc.Final || got.ProviderStatus == "" {
					t.Fatalf("settled: %+v %v: want %s", got, err, sc.Final)
				}
				byID := map[string]rail.Payout{}
				for _, p := range items(t, c, b.ProviderID) {
					byID[p.ID] = p
				}
				for i, it := range req.Items {
					listed, ok := byID[it.ID]
					if !ok {
						t.Fatalf("item %s not listed", it.ID)
					}
					p, err := c.Item(ctx, b.ProviderID, listed.ProviderID)
					if err != nil {
						t.Fatal(err)
					}
					sameItem(t, p, listed)
					if p.Status != sc.ItemStatuses[i] {
						t.Errorf("item %d: %s (provider %q), want %s", i, p.Status, p.ProviderStatus, sc.ItemStatuses[i])
					}
					if sc.Reasons != nil && p.Reason != sc.Reasons[i] {
						t.Errorf("item %d: reason %q, want %q", i, p.Reason, sc.Reasons[i])
					}
					if p.Status != payout.StatusFailed && p.Status != payout.StatusCancelled && (p.Reason != "" || p.ReasonMessage != "") {
						t.Errorf("item %d is %s, yet carries a reason %q %q: reasons are for FAILED and CANCELLED only", i, p.Status, p.Reason, p.ReasonMessage)
					}
				}
			})
		}
	})

	t.Run("batches by status, every page", func(t *testing.T) {
		c, sim := newRail(t, h.New)
		since := time.Now().Add(-time.Hour)
		n := h.PageSize + 1
		want := map[string]bool{}
		for i := range n {
			r := ref(fmt.Sprintf("open%d", i))
			want[create(t, c, h.Request(r, itemIDs(r, 1), 100_00)).ProviderID] = true
		}
		pending := list(t, c, time.Time{}, payout.BatchPending)
		any := list(t, c, time.Time{})
		for id := range want {
			if _, ok := pending[id]; !ok {
				t.Fatalf("PENDING batch %s not listed among %d over pages of %d", id, len(pending), h.PageSize)
			}
			if _, ok := any[id]; !ok {
				t.Fatalf("batch %s not listed without a status filter", id)
			}
		}
		for id := range list(t, c, since, payout.BatchTotalPayment, payout.BatchRejected) {
			if want[id] {
				t.Fatalf("PENDING batch %s listed as final", id)
			}
		}
		sim.Settle()
		final := list(t, c, since, payout.BatchTotalPayment)
		for id := range want {
			if _, ok := final[id]; !ok {
				t.Fatalf("paid batch %s not listed as TOTAL_PAYMENT since %s", id, since)
			}
		}
		for id := range list(t, c, time.Time{}, payout.BatchPending) {
			if want[id] {
				t.Fatalf("paid batch %s still listed as PENDING", id)
			}
		}
		if h.RefusedFilter.New != nil {
			rc, _ := newRail(t, h.RefusedFilter.New)
			var err error
			for _, e := range rc.BatchesByStatus(ctx, time.Time{}, h.RefusedFilter.Status) {
				if e != nil {
					err = e
					break
				}
			}
			var re *rail.Error
			if !errors.As(err, &re) || re.HTTPStatus < 400 || re.HTTPStatus >= 500 {
				t.Fatalf("a refused status filter %s: %v: want a *rail.Error with the provider's 4xx", h.RefusedFilter.Status, err)
			}
		}
	})

	t.Run("webhooks: signed time, and why a forgery is refused", func(t *testing.T) {
		c, sim := newRail(t, h.New)
		r := ref("why")
		b := create(t, c, h.Request(r, itemIDs(r, 2), 1234_00))
		sim.Settle()
		var itemHook, batchHook *Webhook
		hooks := sim.Webhooks(t)
		for i := range hooks {
			ev, err := c.VerifyWebhook(hooks[i].Header, hooks[i].Body)
			if err != nil {
				t.Fatalf("genuine webhook %d refused: %v", i, err)
			}
			if ev.SignedAt.IsZero() {
				t.Fatalf("genuine webhook %d: no signed time", i)
			}
			switch {
			case ev.Item != nil && ev.Item.Status.Final():
				itemHook = &hooks[i]
				p, err := c.Item(ctx, ev.BatchProviderID, ev.Item.ProviderID)
				if err != nil || ev.BatchProviderID != b.ProviderID || p.Status != ev.Item.Status || p.Reason != ev.Item.Reason {
					t.Fatalf("item event %+v (batch %s); Item reads %+v %v", ev.Item, ev.BatchProviderID, p, err)
				}
			case ev.Batch != nil:
				batchHook = &hooks[i]
			}
		}
		if itemHook == nil || batchHook == nil {
			t.Fatalf("the simulator sent no final item event or no batch event (%d webhooks)", len(hooks))
		}
		forgeries := append(slices.Clone(h.Forgeries), h.MoreForgeries...)
		for _, f := range forgeries {
			want, ok := h.Refusals[f.Name]
			if !ok {
				t.Errorf("forgery %q: the harness names no refusal", f.Name)
				continue
			}
			src := *itemHook
			if f.Event == "batch" {
				src = *batchHook
			}
			w := f.Forge(t, Webhook{Header: src.Header.Clone(), Body: slices.Clone(src.Body)})
			_, err := c.VerifyWebhook(w.Header, w.Body)
			var we *rail.WebhookError
			if !errors.As(err, &we) || !errors.Is(err, rail.ErrUnverifiedWebhook) || !errors.Is(err, f.Is) {
				t.Errorf("forgery %q: %v: want a *rail.WebhookError wrapping %v", f.Name, err, f.Is)
				continue
			}
			if got := rail.RefusalOf(err); got != want || we.Refusal != want || we.Rail != h.Rail {
				t.Errorf("forgery %q: refused as %q (%s), want %q", f.Name, got, we.Rail, want)
			}
		}
		if rail.RefusalOf(errors.New("other")) != "" || rail.RefusalOf(nil) != "" {
			t.Error("RefusalOf names a refusal for an error that is none")
		}
	})
}
