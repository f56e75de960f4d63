package railtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// BatchSim is what the batch suite needs of a batch rail's simulator.
type BatchSim interface {
	// Accepted is the simulator's ledger: how many accepted batches carried
	// an item with our requestId. A second batch with the same items under
	// a new idempotency key is accepted and counted (the oracle must see
	// doubles).
	Accepted(requestID string) int
	// DropCreateAnswers makes every create apply, then lose its answer
	// (the connection closes with no response), until heal is called.
	DropCreateAnswers() (heal func())
	// Fail makes every API call answer status before doing anything, until
	// heal is called. The suite asks for 503 and 429 (every call) and 401
	// (creates).
	Fail(status int) (heal func())
	// Settle makes every item final, with the outcome its request asked
	// for, and its batch with it.
	Settle()
	// Webhooks returns every webhook the simulator has sent so far, in the
	// order sent, once their delivery ended.
	Webhooks(t *testing.T) []Webhook
}

// Webhook is one delivered webhook, as the tracker receives it.
type Webhook struct {
	Header http.Header
	Body   []byte
}

// Forgery is a rail-specific forged webhook: Forge returns a copy of a
// genuine one (it must not change its argument) that VerifyWebhook must
// refuse with an error that wraps Is (so that a forgery refused for
// another reason, e.g. unreadable JSON, is caught).
type Forgery struct {
	Name string
	// Event picks the genuine webhook to forge: "item" or "batch".
	Event string
	Forge func(t *testing.T, w Webhook) Webhook
	Is    error
}

// StatusCase is a batch whose items and batch end in known statuses.
type StatusCase struct {
	Name string
	// Request returns the batch, with our reference (or one that ends with
	// a suffix the simulator reads) and item ids.
	Request func(reference string, ids []string) rail.BatchRequest
	// Items is the number of items; Pending the batch status right after
	// the create; Final once settled; ItemStatuses and Reasons each item's
	// mapped status and reason code once settled (Reasons may be nil).
	Items        int
	Pending      payout.BatchStatus
	Final        payout.BatchStatus
	ItemStatuses []payout.Status
	Reasons      []string
}

// Refusal is a create the rail refuses, and the class it must give.
type Refusal struct {
	Name string
	// New, when set, replaces the harness's New (a simulator configured
	// for this refusal); Prepare, when set, runs first (e.g. uses up a
	// daily cap).
	New     func(t *testing.T) (rail.BatchPayouts, BatchSim)
	Prepare func(t *testing.T, c rail.BatchPayouts)
	Request func(reference string, ids []string) rail.BatchRequest
	Want    rail.Class
	Code    string // the provider's code the error must carry
}

// BatchHarness adapts one batch rail to the suite.
type BatchHarness struct {
	Rail rail.Name
	// New returns a fresh client wired to a fresh simulator.
	New func(t *testing.T) (rail.BatchPayouts, BatchSim)
	// Request returns a valid batch with our reference, one item per id
	// (each for amountInCents plus its index), paid once settled.
	Request func(reference string, ids []string, amountInCents int64) rail.BatchRequest
	// InvalidItems corrupt one valid item so that the rail refuses it as
	// sent (Rejected, naming that item). At least one.
	InvalidItems map[string]func(rail.BatchItem) rail.BatchItem
	// Refusals are the rail's own refusals (Deferred ones at least).
	Refusals []Refusal
	// Statuses are the status cases. At least one ends in a paid item.
	Statuses []StatusCase
	// Forgeries are the rail's forged webhooks (a bad signature, an
	// unsigned extra key, a relabelled event type at least).
	Forgeries []Forgery
	// PageSize is the client's page size, so that the suite can list more
	// than one page.
	PageSize int
}

var batchSeq atomic.Int64

// newRef is a batch reference no other test of the run uses.
func newRef(r rail.Name, s string) string {
	return fmt.Sprintf("%s-%s-%d-%d", r, s, time.Now().UnixNano()%1e9, batchSeq.Add(1))
}

// itemIDs are the n requestIds of the batch with reference r.
func itemIDs(r string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-r%d", r, i)
	}
	return out
}

// RunBatchPayouts runs the batch suite.
func RunBatchPayouts(t *testing.T, h BatchHarness) {
	ctx := context.Background()
	ref := func(s string) string { return newRef(h.Rail, s) }
	key := func(r string) string { return "key-" + r }
	accepted := func(t *testing.T, sim BatchSim, ids []string, want int) {
		t.Helper()
		for _, id := range ids {
			if n := sim.Accepted(id); n != want {
				t.Fatalf("ledger: %s accepted %d times, want %d", id, n, want)
			}
		}
	}
	items := func(t *testing.T, c rail.BatchPayouts, providerID string) map[string]rail.Payout {
		t.Helper()
		out := map[string]rail.Payout{}
		for p, err := range c.Items(ctx, providerID) {
			if err != nil {
				t.Fatalf("items of %s: %v", providerID, err)
			}
			if _, dup := out[p.ID]; dup {
				t.Fatalf("items of %s: %s listed twice", providerID, p.ID)
			}
			out[p.ID] = p
		}
		return out
	}
	create := func(t *testing.T, c rail.BatchPayouts, k string, r rail.BatchRequest) rail.Batch {
		t.Helper()
		b, err := c.CreateBatch(ctx, k, r)
		if err != nil {
			t.Fatalf("create %s: %v", r.Reference, err)
		}
		if b.ProviderID == "" || b.Reference != r.Reference {
			t.Fatalf("create answered %+v: want a provider id and our reference", b)
		}
		return b
	}

	t.Run("create, then find by our reference and read its items", func(t *testing.T) {
		c, sim := h.New(t)
		if c.Rail() != h.Rail {
			t.Fatalf("Rail() = %s", c.Rail())
		}
		r := ref("create")
		rids := itemIDs(r, 3)
		b := create(t, c, key(r), h.Request(r, rids, 1000_00))
		found, err := c.FindBatches(ctx, r)
		if err != nil || len(found) != 1 || found[0].ProviderID != b.ProviderID || found[0].Reference != r {
			t.Fatalf("find by our reference: %+v %v: want the one batch", found, err)
		}
		if found[0].ItemCount != 3 || found[0].AmountInCents != 3*1000_00+0+1+2 {
			t.Fatalf("found %+v: want 3 items and their sum", found[0])
		}
		got := items(t, c, b.ProviderID)
		for i, id := range rids {
			p, ok := got[id]
			if !ok || p.ProviderID == "" || p.AmountInCents != 1000_00+int64(i) || p.Status != payout.StatusPending {
				t.Fatalf("item %s: %+v (found %v): want a provider id, %d cents, PENDING", id, p, ok, 1000_00+i)
			}
		}
		if len(got) != 3 {
			t.Fatalf("%d items, want 3", len(got))
		}
		accepted(t, sim, rids, 1)
	})

	t.Run("absent reference is proven absent", func(t *testing.T) {
		c, _ := h.New(t)
		found, err := c.FindBatches(ctx, ref("absent"))
		if err != nil || len(found) != 0 {
			t.Fatalf("find of a reference never sent: %+v %v", found, err)
		}
	})

	t.Run("lost answer: outcome unknown, found, and the same key is not paid twice", func(t *testing.T) {
		c, sim := h.New(t)
		r := ref("lost")
		rids := itemIDs(r, 2)
		req := h.Request(r, rids, 500_00)
		heal := sim.DropCreateAnswers()
		_, err := c.CreateBatch(ctx, key(r), req)
		heal()
		// An HTTP stack may replay the POST under the same key on its own
		// (Go's transport does when a kept-alive connection broke before
		// any answer, for a request with an Idempotency-Key): then the
		// provider says the batch exists. Either way it must be looked up.
		if cl := rail.ClassOf(err); err == nil || (cl != rail.OutcomeUnknown && cl != rail.AlreadyExists) {
			t.Fatalf("create with a lost answer: %v (class %s), want outcome_unknown or already_exists", err, cl)
		}
		found, err := c.FindBatches(ctx, r)
		if err != nil || len(found) != 1 {
			t.Fatalf("find after the lost answer: %+v %v: want the batch that landed", found, err)
		}
		if got := items(t, c, found[0].ProviderID); len(got) != 2 {
			t.Fatalf("the batch that landed has %d items, want 2", len(got))
		}
		accepted(t, sim, rids, 1)
		// The retry the dispatcher makes: same key.
		_, err = c.CreateBatch(ctx, key(r), req)
		if err == nil || rail.ClassOf(err) != rail.AlreadyExists {
			t.Fatalf("the same key replayed: %v (class %s), want already_exists", err, rail.ClassOf(err))
		}
		accepted(t, sim, rids, 1)
		if found, err := c.FindBatches(ctx, r); err != nil || len(found) != 1 {
			t.Fatalf("find after the replay: %d batches %v, want 1", len(found), err)
		}
	})

	t.Run("a new key pays the batch twice, and the ledger counts it", func(t *testing.T) {
		c, sim := h.New(t)
		r := ref("twice")
		rids := itemIDs(r, 2)
		req := h.Request(r, rids, 700_00)
		create(t, c, key(r), req)
		create(t, c, key(r)+"-2", req)
		accepted(t, sim, rids, 2)
		if found, err := c.FindBatches(ctx, r); err != nil || len(found) != 2 {
			t.Fatalf("find: %d batches %v, want 2 (a batch paid twice must show)", len(found), err)
		}
	})

	t.Run("error classes", func(t *testing.T) {
		c, sim := h.New(t)
		seen := map[rail.Class]bool{}
		check := func(t *testing.T, what string, err error, want rail.Class) {
			t.Helper()
			if err == nil || rail.ClassOf(err) != want {
				t.Errorf("%s: %v (class %s), want %s", what, err, rail.ClassOf(err), want)
			}
			seen[want] = true
		}
		firstErr := func(seq func(yield func(rail.Payout, error) bool)) error {
			for _, err := range seq {
				return err
			}
			return nil
		}
		r0 := ref("class-ok")
		created := create(t, c, key(r0), h.Request(r0, itemIDs(r0, 1), 100_00))
		for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
			heal := sim.Fail(status)
			r := ref("class")
			_, cerr := c.CreateBatch(ctx, key(r), h.Request(r, itemIDs(r, 1), 100_00))
			_, ferr := c.FindBatches(ctx, r)
			ierr := firstErr(c.Items(ctx, created.ProviderID))
			var lerr error
			for _, err := range c.ListBatches(ctx, time.Now().Add(-time.Hour)) {
				lerr = err
				break
			}
			heal()
			wantCreate := rail.Retryable
			if status >= 500 {
				wantCreate = rail.OutcomeUnknown
			}
			check(t, fmt.Sprintf("%d on a create", status), cerr, wantCreate)
			check(t, fmt.Sprintf("%d on find", status), ferr, rail.Retryable)
			check(t, fmt.Sprintf("%d on items", status), ierr, rail.Retryable)
			check(t, fmt.Sprintf("%d on list", status), lerr, rail.Retryable)
			accepted(t, sim, itemIDs(r, 1), 0)
		}
		heal := sim.Fail(http.StatusUnauthorized)
		r := ref("unauth")
		_, err := c.CreateBatch(ctx, key(r), h.Request(r, itemIDs(r, 1), 100_00))
		heal()
		check(t, "401 on a create", err, rail.Unauthorized)
		accepted(t, sim, itemIDs(r, 1), 0)
		check(t, "items of a batch the provider never made", firstErr(c.Items(ctx, "00000000-0000-4000-8000-000000000000")), rail.Unauthorized)

		r = ref("badkey")
		_, err = c.CreateBatch(ctx, "not a key!", h.Request(r, itemIDs(r, 1), 100_00))
		check(t, "an invalid idempotency key", err, rail.Permanent)
		accepted(t, sim, itemIDs(r, 1), 0)

		if len(h.InvalidItems) == 0 {
			t.Error("the harness names no invalid item")
		}
		for name, corrupt := range h.InvalidItems {
			r := ref("invalid")
			rids := itemIDs(r, 3)
			req := h.Request(r, rids, 100_00)
			req.Items[1] = corrupt(req.Items[1])
			_, err := c.CreateBatch(ctx, key(r), req)
			check(t, name, err, rail.Rejected)
			var re *rail.Error
			if !errors.As(err, &re) || !slices.Equal(re.Items, []string{rids[1]}) {
				t.Errorf("%s: the error names items %v, want [%s] (rejected per payee)", name, itemsOf(re), rids[1])
			}
			accepted(t, sim, rids, 0)
			if found, err := c.FindBatches(ctx, r); err != nil || len(found) != 0 {
				t.Errorf("%s: a refused batch is found: %+v %v", name, found, err)
			}
		}

		for _, rf := range h.Refusals {
			c, sim := c, sim
			if rf.New != nil {
				c, sim = rf.New(t)
			}
			if rf.Prepare != nil {
				rf.Prepare(t, c)
			}
			r := ref("refused")
			rids := itemIDs(r, 2)
			_, err := c.CreateBatch(ctx, key(r), rf.Request(r, rids))
			check(t, rf.Name, err, rf.Want)
			var re *rail.Error
			if rf.Code != "" && (!errors.As(err, &re) || re.Code != rf.Code) {
				t.Errorf("%s: %v: want code %s", rf.Name, err, rf.Code)
			}
			accepted(t, sim, rids, 0)
			if found, err := c.FindBatches(ctx, r); err != nil || len(found) != 0 {
				t.Errorf("%s: a refused batch is found: %+v %v", rf.Name, found, err)
			}
		}
		for _, cl := range []rail.Class{rail.Retryable, rail.OutcomeUnknown, rail.Rejected, rail.Deferred, rail.Unauthorized, rail.Permanent} {
			if !seen[cl] {
				t.Errorf("no case of class %s (already_exists is the lost-answer subtest's)", cl)
			}
		}
	})

	t.Run("status mapping", func(t *testing.T) {
		if len(h.Statuses) == 0 {
			t.Fatal("the harness gives no status case")
		}
		paid := false
		for _, sc := range h.Statuses {
			t.Run(sc.Name, func(t *testing.T) {
				c, sim := h.New(t)
				r := ref("status")
				rids := itemIDs(r, sc.Items)
				req := sc.Request(r, rids)
				r = req.Reference // a rail may steer a batch's outcome by it
				b := create(t, c, key(r), req)
				found, err := c.FindBatches(ctx, r)
				if err != nil || len(found) != 1 || found[0].Status != sc.Pending || found[0].ProviderStatus == "" {
					t.Fatalf("before settling: %+v %v: want %s", found, err, sc.Pending)
				}
				sim.Settle()
				found, err = c.FindBatches(ctx, r)
				if err != nil || len(found) != 1 || found[0].Status != sc.Final {
					t.Fatalf("settled: %+v %v: want %s", found, err, sc.Final)
				}
				got := items(t, c, b.ProviderID)
				for i, id := range rids {
					p := got[id]
					if p.Status != sc.ItemStatuses[i] || p.ProviderStatus == "" {
						t.Errorf("item %d: %s (provider %q), want %s", i, p.Status, p.ProviderStatus, sc.ItemStatuses[i])
					}
					if sc.Reasons != nil && p.Reason != sc.Reasons[i] {
						t.Errorf("item %d: reason %q, want %q", i, p.Reason, sc.Reasons[i])
					}
				}
			})
			paid = paid || slices.Contains(sc.ItemStatuses, payout.StatusApproved)
		}
		if !paid {
			t.Error("no status case ends in a paid item")
		}
	})

	t.Run("pagination", func(t *testing.T) {
		c, _ := h.New(t)
		if h.PageSize < 2 {
			t.Fatalf("PageSize %d", h.PageSize)
		}
		since := time.Now().Add(-time.Hour)
		n := h.PageSize + h.PageSize/2 + 1
		want := map[string]bool{}
		for i := range n {
			r := ref(fmt.Sprintf("page%d", i))
			create(t, c, key(r), h.Request(r, itemIDs(r, 1), 200_00))
			want[r] = true
		}
		got := map[string]int{}
		for b, err := range c.ListBatches(ctx, since) {
			if err != nil {
				t.Fatal(err)
			}
			if b.ProviderID == "" || b.Status == "" {
				t.Fatalf("listed %+v: want a provider id and a status", b)
			}
			got[b.Reference]++
		}
		for r := range want {
			if got[r] != 1 {
				t.Fatalf("listing shows %s %d times, want once (%d batches over pages of %d)", r, got[r], n, h.PageSize)
			}
		}

		r := ref("bigbatch")
		rids := itemIDs(r, 2*h.PageSize+1)
		b := create(t, c, key(r), h.Request(r, rids, 300_00))
		its := items(t, c, b.ProviderID)
		for i, id := range rids {
			if p, ok := its[id]; !ok || p.AmountInCents != 300_00+int64(i) {
				t.Fatalf("item %s: %+v (listed %v), want %d cents (%d items over pages of %d)", id, p, ok, 300_00+i, len(rids), h.PageSize)
			}
		}
		if len(its) != len(rids) {
			t.Fatalf("%d items, want %d", len(its), len(rids))
		}
	})

	t.Run("webhooks: genuine, replayed, forged", func(t *testing.T) {
		c, sim := h.New(t)
		r := ref("hook")
		rids := itemIDs(r, 2)
		b := create(t, c, key(r), h.Request(r, rids, 4321_00))
		sim.Settle()
		byProvider := map[string]rail.Payout{}
		for _, p := range items(t, c, b.ProviderID) {
			byProvider[p.ProviderID] = p
		}
		var itemHook, batchHook *Webhook
		hooks := sim.Webhooks(t)
		for i := range hooks {
			w := hooks[i]
			ev, err := c.VerifyWebhook(w.Header, w.Body)
			if err != nil {
				t.Fatalf("genuine webhook %d refused: %v", i, err)
			}
			if _, err := c.VerifyWebhook(w.Header, w.Body); err != nil {
				t.Fatalf("a replayed genuine webhook must verify (dedupe is the tracker's): %v", err)
			}
			switch {
			case ev.Item != nil:
				want, ok := byProvider[ev.Item.ProviderID]
				if !ok || ev.BatchProviderID != b.ProviderID {
					t.Fatalf("item event %+v names no item of batch %s", ev, b.ProviderID)
				}
				if ev.Item.Status.Final() && (ev.Item.Status != want.Status || ev.Item.AmountInCents != want.AmountInCents) {
					t.Fatalf("item event %+v, the item reads %+v", ev.Item, want)
				}
				if ev.Item.Status.Final() {
					itemHook = &hooks[i]
				}
			case ev.Batch != nil:
				if ev.Batch.ProviderID != b.ProviderID || ev.Batch.Reference != r || ev.Batch.Status == "" {
					t.Fatalf("batch event %+v, want batch %s, our reference and a status", ev.Batch, b.ProviderID)
				}
				batchHook = &hooks[i]
			}
		}
		if itemHook == nil || batchHook == nil {
			t.Fatalf("the simulator sent no final item event or no batch event (%d webhooks)", len(hooks))
		}

		forged := append([]byte(nil), itemHook.Body...)
		for i := range forged {
			if forged[i] >= '1' && forged[i] <= '8' {
				forged[i]++
				break
			}
		}
		if _, err := c.VerifyWebhook(itemHook.Header, forged); !errors.Is(err, rail.ErrUnverifiedWebhook) {
			t.Errorf("a webhook whose body was altered: %v", err)
		}
		bad := itemHook.Header.Clone()
		for k := range bad {
			bad.Set(k, bad.Get(k)+"0")
		}
		if _, err := c.VerifyWebhook(bad, itemHook.Body); !errors.Is(err, rail.ErrUnverifiedWebhook) {
			t.Errorf("a webhook with a wrong signature header: %v", err)
		}
		if len(h.Forgeries) < 3 {
			t.Errorf("the harness gives %d forgeries, want at least 3", len(h.Forgeries))
		}
		for _, f := range h.Forgeries {
			src := *itemHook
			if f.Event == "batch" {
				src = *batchHook
			}
			keep := append([]byte(nil), src.Body...)
			w := f.Forge(t, Webhook{Header: src.Header.Clone(), Body: append([]byte(nil), src.Body...)})
			_, err := c.VerifyWebhook(w.Header, w.Body)
			if !errors.Is(err, rail.ErrUnverifiedWebhook) || !errors.Is(err, f.Is) {
				t.Errorf("forgery %q: %v, want a refusal wrapping %v", f.Name, err, f.Is)
			}
			if _, err := c.VerifyWebhook(src.Header, keep); err != nil {
				t.Errorf("after forgery %q the genuine webhook no longer verifies: %v", f.Name, err)
			}
		}
	})
}

func itemsOf(re *rail.Error) []string {
	if re == nil {
		return nil
	}
	return re.Items
}
