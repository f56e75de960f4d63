package wompitest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

const conformancePageSize = 5

// conformanceSim is the in-process simulator seen by the batch suite:
// faults through its knobs, a manual clock, and a sink that keeps every
// webhook it delivers.
type conformanceSim struct {
	s     *wompitest.Server
	mu    sync.Mutex
	hooks []railtest.Webhook
}

func (cs *conformanceSim) Accepted(requestID string) int {
	e, _ := cs.s.LedgerEntry(requestID)
	return e.Accepted
}

func (cs *conformanceSim) DropCreateAnswers() func() {
	cs.s.UpdateFaults(func(f *wompitest.Faults) { f.DropResponseRate = 1 })
	return func() { cs.s.SetFaults(wompitest.Faults{}) }
}

func (cs *conformanceSim) Fail(status int) func() {
	cs.s.UpdateFaults(func(f *wompitest.Faults) {
		switch status {
		case http.StatusServiceUnavailable:
			f.ErrorRate = 1
		case http.StatusTooManyRequests:
			f.TooManyRequestsRate = 1
		case http.StatusUnauthorized:
			f.PostUnauthorized = true
		default:
			panic(fmt.Sprintf("the Wompi simulator cannot answer %d", status))
		}
	})
	return func() { cs.s.SetFaults(wompitest.Faults{}) }
}

func (cs *conformanceSim) Settle() { cs.s.SettleAll() }

func (cs *conformanceSim) Webhooks(t *testing.T) []railtest.Webhook {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs.s.WaitWebhooks(ctx); err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]railtest.Webhook(nil), cs.hooks...)
}

// lastConformanceClock is the clock of the simulator newConformance made
// last.
var lastConformanceClock atomic.Pointer[wompitest.ManualClock]

func newConformance(t *testing.T, cfg wompitest.Config) (rail.BatchPayouts, railtest.BatchSim) {
	t.Helper()
	cs := &conformanceSim{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cs.mu.Lock()
		cs.hooks = append(cs.hooks, railtest.Webhook{Header: r.Header.Clone(), Body: body})
		cs.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)
	clock := wompitest.NewManualClock(time.Now())
	lastConformanceClock.Store(clock)
	cfg.Clock = clock
	cfg.WebhookURL = sink.URL
	cfg.WebhookBackoff = time.Millisecond
	cfg.BatchOutcomes = true
	cfg.Seed = 7
	cs.s = wompitest.NewTestServer(t, cfg)
	c, err := wompi.New(wompi.Config{BaseURL: cs.s.BaseURL(), APIKey: cs.s.Config().APIKey,
		PrincipalID: cs.s.Config().PrincipalID, PageSize: conformancePageSize})
	if err != nil {
		t.Fatal(err)
	}
	return wompi.NewRail(c, wompi.RailConfig{EventsSecret: cs.s.Config().EventsSecret}), cs
}

// payee is a payee the simulator pays: its account number ends in 5, so no
// failure rule matches it.
func payee(i int) rail.Payee {
	return rail.Payee{Name: "Ana Gómez", Email: "ana@example.com", LegalIDType: "CC", LegalID: "1000000001",
		BankCode: "1007", AccountType: "AHORROS", AccountNumber: fmt.Sprintf("40%07d5", i)}
}

func batchRequest(account string) func(ref string, ids []string, cents int64) rail.BatchRequest {
	return func(ref string, ids []string, cents int64) rail.BatchRequest {
		r := rail.BatchRequest{Reference: ref, OriginAccountID: account, PaymentType: wompi.PaymentTypeProviders}
		for i, id := range ids {
			r.Items = append(r.Items, rail.BatchItem{ID: id, AmountInCents: cents + int64(i), Payee: payee(i)})
		}
		return r
	}
}

func TestBatchConformance(t *testing.T) { railtest.RunBatchPayouts(t, batchHarness()) }

// TestBatchRailConformance runs the suite of what the dispatcher needs of
// Wompi besides the batch calls (rail.BatchRail).
func TestBatchRailConformance(t *testing.T) {
	railtest.RunBatchRail(t, railtest.BatchRailHarness{
		BatchHarness: batchHarness(),
		// The day of the simulator just made (the suite runs one at a
		// time): by the wall clock, a suite that crossed Bogotá's midnight
		// (05:00 UTC) after the simulator's clock was set asked for a day
		// it has not reached.
		Today:           func() string { return wompi.BogotaDay(lastConformanceClock.Load().Now()) },
		KnownBankCode:   "1007",
		UnknownBankCode: "0000",
		Unhealthy: func(sim railtest.BatchSim) func() {
			s := sim.(*conformanceSim).s
			s.SetUnhealthy(true)
			return func() { s.SetUnhealthy(false) }
		},
		PartialOutage: func(sim railtest.BatchSim) func() {
			s := sim.(*conformanceSim).s
			s.UpdateFaults(func(f *wompitest.Faults) { f.PartialOutage = true })
			return func() { s.UpdateFaults(func(f *wompitest.Faults) { f.PartialOutage = false }) }
		},
		DeferredReasons: map[string]payout.Reason{
			"insufficient balance (EXC_008)": payout.ReasonInsufficientBalance,
			"daily limit (EXC_017)":          payout.ReasonDailyLimit,
			"daily batch cap":                payout.ReasonBatchBudget,
		},
	})
}

// batchHarness is Wompi's harness of the batch suite (and, within
// TrackingHarness, of the tracking suite).
func batchHarness() railtest.BatchHarness {
	valid := batchRequest(wompitest.AccountMain)
	withSuffix := func(suffix string, accounts ...string) func(string, []string) rail.BatchRequest {
		return func(ref string, ids []string) rail.BatchRequest {
			r := valid(ref+suffix, ids, 100_00)
			for i, a := range accounts {
				if a != "" {
					r.Items[i].Payee.AccountNumber = a
				}
			}
			return r
		}
	}
	return railtest.BatchHarness{
		Rail: rail.Wompi,
		New: func(t *testing.T) (rail.BatchPayouts, railtest.BatchSim) {
			return newConformance(t, wompitest.Config{})
		},
		Request: valid,
		InvalidItems: map[string]func(rail.BatchItem) rail.BatchItem{
			"account number of zeros": func(it rail.BatchItem) rail.BatchItem { it.Payee.AccountNumber = "000000"; return it },
			"email without a domain":  func(it rail.BatchItem) rail.BatchItem { it.Payee.Email = "ana@"; return it },
			"bank code GET /banks does not know": func(it rail.BatchItem) rail.BatchItem {
				it.Payee.BankCode = "0000"
				return it
			},
		},
		Refusals: []railtest.Refusal{
			{Name: "insufficient balance (EXC_008)", Want: rail.Deferred, Code: wompi.CodeInsufficientBalance,
				Request: func(ref string, ids []string) rail.BatchRequest {
					return batchRequest(wompitest.AccountLow)(ref, ids, 6_000_000) // $60,000.00 each, $100,000.00 held
				}},
			{Name: "daily limit (EXC_017)", Want: rail.Deferred, Code: wompi.CodeDailyLimit,
				Request: func(ref string, ids []string) rail.BatchRequest {
					return batchRequest(wompitest.AccountSecondary)(ref, ids, 10_500_000_000) // over its $200,000,000.00 a day
				}},
			{Name: "daily batch cap", Want: rail.Deferred, Code: wompi.CodeDailyBatchLimit,
				New: func(t *testing.T) (rail.BatchPayouts, railtest.BatchSim) {
					return newConformance(t, wompitest.Config{DailyBatchCap: 1})
				},
				Prepare: func(t *testing.T, c rail.BatchPayouts) {
					if _, err := c.CreateBatch(context.Background(), "key-cap-first", valid("cap-first", []string{"cap-first-r0"}, 100_00)); err != nil {
						t.Fatal(err)
					}
				},
				Request: func(ref string, ids []string) rail.BatchRequest { return valid(ref, ids, 100_00) }},
			{Name: "dispersion on a past day (a batch-level validation)", Want: rail.Rejected, Code: wompi.CodeValidation,
				Request: func(ref string, ids []string) rail.BatchRequest {
					r := valid(ref, ids, 100_00)
					r.DispersionAt = time.Now().Add(-24 * time.Hour)
					return r
				}},
		},
		Statuses: []railtest.StatusCase{
			{Name: "paid", Request: withSuffix(""), Items: 2, Pending: payout.BatchPending, Final: payout.BatchTotalPayment,
				ItemStatuses: []payout.Status{payout.StatusApproved, payout.StatusApproved}, Reasons: []string{"", ""}},
			{Name: "the bank refuses one (D07)", Request: withSuffix("", "", "4000000007"), Items: 2,
				Pending: payout.BatchPending, Final: payout.BatchTotalPayment,
				ItemStatuses: []payout.Status{payout.StatusApproved, payout.StatusFailed}, Reasons: []string{"", "D07"}},
			{Name: "the approver cancels one", Request: withSuffix("", wompitest.DefaultCancelPrefix+"0000015"), Items: 2,
				Pending: payout.BatchPending, Final: payout.BatchTotalPayment,
				ItemStatuses: []payout.Status{payout.StatusCancelled, payout.StatusApproved}},
			{Name: "batch rejected", Request: withSuffix(wompitest.SuffixRejected), Items: 1,
				Pending: payout.BatchPending, Final: payout.BatchRejected, ItemStatuses: []payout.Status{payout.StatusFailed}},
			{Name: "batch not approved", Request: withSuffix(wompitest.SuffixNotApproved), Items: 1,
				Pending: payout.BatchPending, Final: payout.BatchNotApproved, ItemStatuses: []payout.Status{payout.StatusCancelled}},
			{Name: "anti-fraud hold", Request: withSuffix(wompitest.SuffixAFEHold), Items: 1,
				Pending: payout.BatchAFEOnHold, Final: payout.BatchAFEOnHold, ItemStatuses: []payout.Status{payout.StatusPending}},
			{Name: "anti-fraud rejection", Request: withSuffix(wompitest.SuffixAFERejected), Items: 1,
				Pending: payout.BatchPending, Final: payout.BatchAFERejected, ItemStatuses: []payout.Status{payout.StatusFailed}},
		},
		Forgeries: wompiForgeries(wompitest.Config{}),
		PageSize:  conformancePageSize,
	}
}

// editEvent decodes a webhook body (numbers kept as written), applies fn
// and encodes it again; the checksum header is kept.
func editEvent(t *testing.T, w railtest.Webhook, fn func(ev map[string]any)) railtest.Webhook {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(w.Body))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	fn(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return railtest.Webhook{Header: w.Header, Body: b}
}

func entity(t *testing.T, ev map[string]any, name string) map[string]any {
	t.Helper()
	data, _ := ev["data"].(map[string]any)
	e, _ := data[name].(map[string]any)
	if e == nil {
		t.Fatalf("the event has no data.%s", name)
	}
	return e
}

// wompiForgeries are the webhooks wompi.ParseEvent refuses, each from a
// genuine one; cfg is the simulator's (for its events secret).
func wompiForgeries(cfg wompitest.Config) []railtest.Forgery {
	secret := cfg.EventsSecret
	if secret == "" {
		secret = "sim-events-secret"
	}
	return []railtest.Forgery{
		{Name: "status changed under the genuine checksum", Event: "item", Is: wompi.ErrInvalidChecksum,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				return editEvent(t, w, func(ev map[string]any) {
					e := entity(t, ev, "transaction")
					if e["status"] == "APPROVED" {
						e["status"] = "FAILED"
					} else {
						e["status"] = "APPROVED"
					}
				})
			}},
		{Name: "unsigned: no checksum in header or body", Event: "item", Is: wompi.ErrInvalidChecksum,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				w = editEvent(t, w, func(ev map[string]any) { ev["signature"].(map[string]any)["checksum"] = "" })
				w.Header = http.Header{"Content-Type": {"application/json"}}
				return w
			}},
		{Name: "signed event with an unsigned case-variant key", Event: "item", Is: wompi.ErrAmbiguousEvent,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				return editEvent(t, w, func(ev map[string]any) { entity(t, ev, "transaction")["Status"] = "FAILED" })
			}},
		{Name: "signed event with a repeated key", Event: "item", Is: wompi.ErrAmbiguousEvent,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				if !bytes.HasPrefix(w.Body, []byte("{")) {
					t.Fatal("body is not an object")
				}
				w.Body = append([]byte(`{"event":"payout.updated",`), w.Body[1:]...)
				return w
			}},
		{Name: "signed event with an unsigned extra entity", Event: "item", Is: wompi.ErrUnsignedField,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				return editEvent(t, w, func(ev map[string]any) {
					ev["data"].(map[string]any)["payout"] = map[string]any{"id": "x", "status": "TOTAL_PAYMENT", "amountInCents": 1}
				})
			}},
		{Name: "item event relabelled as a batch event", Event: "item", Is: wompi.ErrUnsignedField,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				return editEvent(t, w, func(ev map[string]any) { ev["event"] = wompi.EventPayoutUpdated })
			}},
		{Name: "batch event relabelled as an item event", Event: "batch", Is: wompi.ErrUnsignedField,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				return editEvent(t, w, func(ev map[string]any) { ev["event"] = wompi.EventTransactionUpdated })
			}},
		{Name: "signed with the secret, but not over the status", Event: "item", Is: wompi.ErrUnsignedField,
			Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
				var ev struct {
					Event string         `json:"event"`
					Data  map[string]any `json:"data"`
				}
				dec := json.NewDecoder(bytes.NewReader(w.Body))
				dec.UseNumber()
				if err := dec.Decode(&ev); err != nil {
					t.Fatal(err)
				}
				body, sum, err := wompi.SignEvent(ev.Event, ev.Data, []string{"transaction.id", "transaction.amountInCents"}, time.Now(), secret)
				if err != nil {
					t.Fatal(err)
				}
				h := http.Header{}
				h.Set(wompi.HeaderEventChecksum, sum)
				return railtest.Webhook{Header: h, Body: body}
			}},
	}
}
