package wompitest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// TestPublishedOnlyDropsOurExtras: with PublishedOnly every [ours] field
// is gone and ?date= is ignored; without it they are there.
func TestPublishedOnlyDropsOurExtras(t *testing.T) {
	for _, pub := range []bool{false, true} {
		s, c, _ := start(t, wompitest.Config{PublishedOnly: pub})
		ctx := context.Background()
		req := batchr("pub-1", wompitest.AccountMain, txr("pub-1-a", "1234567890", 1000))
		req.DispersionDatetime = t0.Add(24 * time.Hour)
		req.Recurring = &wompi.Recurring{Interval: wompi.IntervalMonth, Months: 3}
		res, err := c.CreatePayout(ctx, "pub-1", req)
		if err != nil {
			t.Fatal(err)
		}
		tomorrow := t0.Add(24 * time.Hour).In(wompi.Bogota).Format(time.DateOnly)
		_, lim := raw(t, s, "GET", "/v1/limits?date="+tomorrow, nil, nil)
		_, p := raw(t, s, "GET", "/v1/payouts/"+res.PayoutID, nil, nil)
		_, txs := raw(t, s, "GET", "/v1/payouts/"+res.PayoutID+"/transactions", nil, nil)
		tx := txs["data"].(map[string]any)["records"].([]any)[0].(map[string]any)
		payout := p["data"].(map[string]any)
		if pub {
			if got := keys(lim); got != "limits,numberOfTransactionsConsumed" {
				t.Fatalf("published /limits keys = %s", got)
			}
			// date ignored: today's figures (nothing spent today).
			if l := lim["limits"].(map[string]any); l["dailyConsumed"].(float64) != 0 {
				t.Fatalf("published /limits answered for ?date=: %v", l)
			}
			if _, ok := payout["accountId"]; ok {
				t.Fatal("published batch carries accountId")
			}
			if _, ok := payout["recurring"]; ok {
				t.Fatal("published batch carries recurring")
			}
			if _, ok := tx["payoutId"]; ok {
				t.Fatal("published transaction carries payoutId")
			}
			continue
		}
		if got := keys(lim); got != "accounts,date,limits,numberOfBatchesConsumed,numberOfTransactionsConsumed" {
			t.Fatalf("/limits keys = %s", got)
		}
		if l := lim["limits"].(map[string]any); l["dailyConsumed"].(float64) != 1000 {
			t.Fatalf("/limits?date= for tomorrow: %v", l)
		}
		if payout["accountId"] != wompitest.AccountMain || payout["recurring"] == nil || tx["payoutId"] != res.PayoutID {
			t.Fatalf("extras missing: payout %v tx %v", payout, tx)
		}
	}
}

// TestWebhookSignaturePropertiesVary: the signed property list changes
// from event to event [doc], every event still verifies; the knob pins it.
func TestWebhookSignaturePropertiesVary(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		rcv := newReceiver(t, "sec")
		s, c, _ := start(t, wompitest.Config{EventsSecret: "sec", FixedSignatureProperties: fixed})
		s.SetWebhookURL(rcv.URL)
		ctx := context.Background()
		var txs []wompi.TransactionRequest
		for i := range 12 {
			txs = append(txs, txr(fmt.Sprintf("sp-%v-%d", fixed, i), "1234567890", 100))
		}
		if _, err := c.CreatePayout(ctx, fmt.Sprintf("sp-%v", fixed), batchr(fmt.Sprintf("sp-%v", fixed), wompitest.AccountMain, txs...)); err != nil {
			t.Fatal(err)
		}
		s.SettleAll()
		waitHooks(t, s)
		evs, _ := rcv.snapshot() // every one verified by the receiver
		lists := map[string]bool{}
		for _, ev := range evs {
			lists[ev.Event+":"+strings.Join(ev.Signature.Properties, ",")] = true
		}
		if len(evs) < 13 {
			t.Fatalf("fixed=%v: %d events", fixed, len(evs))
		}
		if fixed && len(lists) != 2 {
			t.Fatalf("fixed: %d property lists, want one per event type: %v", len(lists), lists)
		}
		if !fixed && len(lists) < 4 {
			t.Fatalf("the property list does not vary: %v", lists)
		}
	}
}

func TestDispersionDatetimeExactFormat(t *testing.T) {
	s, _, _ := start(t, wompitest.Config{})
	for i, tt := range []struct {
		v  string
		ok bool
	}{
		{"2026-03-11T09:00", true}, {"2026-03-11T9:00", false}, {"2026-03-11T09:00:00", false},
		{"2026-03-11 09:00", false}, {"2026-03-11T09:00Z", false}, {"2026-3-11T09:00", false},
	} {
		ref := fmt.Sprintf("dd-%d", i)
		req := batchr(ref, wompitest.AccountMain, txr(ref, "1234567890", 100))
		var m map[string]any
		if err := json.Unmarshal(wompi.AppendCreatePayoutBody(nil, req), &m); err != nil {
			t.Fatal(err)
		}
		m["dispersionDatetime"] = tt.v
		st, resp := raw(t, s, "POST", "/v1/payouts", map[string]string{wompi.HeaderIdempotencyKey: ref}, mustJSON(m))
		if (st == 201) != tt.ok {
			t.Errorf("%q: %d %v, want ok=%v", tt.v, st, resp["message"], tt.ok)
		}
	}
}

func TestContentTypeChecked(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		s, _, _ := start(t, wompitest.Config{LenientContentType: lenient})
		body, _ := json.Marshal(batchr("ct-1", wompitest.AccountMain, txr("ct-1", "1234567890", 100)))
		for _, ct := range []string{"text/plain", ""} {
			st, _ := raw(t, s, "POST", "/v1/payouts", map[string]string{"Content-Type": ct, wompi.HeaderIdempotencyKey: "ct-" + ct[:min(len(ct), 4)]}, body)
			want := 415
			if lenient {
				want = 201
			}
			if st != want {
				t.Errorf("lenient=%v Content-Type %q: %d, want %d", lenient, ct, st, want)
			}
			body, _ = json.Marshal(batchr("ct-2", wompitest.AccountMain, txr("ct-2", "1234567890", 100)))
		}
		if st, _ := raw(t, s, "POST", "/v1/payouts", map[string]string{"Content-Type": "application/json; charset=utf-8"},
			mustJSON(batchr("ct-3", wompitest.AccountMain, txr("ct-3", "1234567890", 100)))); st != 201 {
			t.Errorf("application/json; charset=utf-8: %d", st)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestStatusFilterKnob: by default an unknown status filter value matches
// nothing (the docs are silent); StrictStatusFilter answers 400 to
// anything outside the six documented values, AFE ones included.
func TestStatusFilterKnob(t *testing.T) {
	for _, strict := range []bool{false, true} {
		s, _, _ := start(t, wompitest.Config{StrictStatusFilter: strict})
		for _, q := range []string{"PENDING,PARTIAL_PAYMENT", "PENDING_APPROVAL,NOT_APPROVED,REJECTED,TOTAL_PAYMENT"} {
			if st, _ := raw(t, s, "GET", "/v1/payouts?status="+q, nil, nil); st != 200 {
				t.Errorf("strict=%v %s: %d", strict, q, st)
			}
		}
		for _, q := range []string{"DONE", "PENDING,PARTIAL_PAYMENT,AFE_ON_HOLD", "AFE_REJECTED"} {
			st, _ := raw(t, s, "GET", "/v1/payouts?status="+q, nil, nil)
			if want := map[bool]int{false: 200, true: 400}[strict]; st != want {
				t.Errorf("strict=%v %s: %d, want %d", strict, q, st, want)
			}
		}
	}
}

func TestHealthPartialOutage(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{Faults: wompitest.Faults{PartialOutage: true}})
	h, err := c.Health(context.Background())
	if err != nil || h.Status != wompi.HealthPartialOutage {
		t.Fatalf("health %+v %v", h, err)
	}
	s.SetUnhealthy(true)
	if h, err = c.Health(context.Background()); err != nil || h.Status != wompi.HealthUnhealthy {
		t.Fatalf("unhealthy wins: %+v %v", h, err)
	}
}

// TestBatchOutcomes: with the knob, a batch reference suffix ends the
// batch REJECTED, NOT_APPROVED, AFE_REJECTED or holds it AFE_ON_HOLD;
// without it the same reference is paid.
func TestBatchOutcomes(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{BatchOutcomes: true})
	ctx := context.Background()
	acc0, _ := c.Accounts(ctx, wompi.AccountsFilter{})
	want := map[string]struct {
		batch wompi.BatchStatus
		tx    wompi.TransactionStatus
	}{
		"bo" + wompitest.SuffixRejected:    {wompi.BatchRejected, wompi.TransactionFailed},
		"bo" + wompitest.SuffixNotApproved: {wompi.BatchNotApproved, wompi.TransactionCancelled},
		"bo" + wompitest.SuffixAFERejected: {wompi.BatchAFERejected, wompi.TransactionFailed},
		"bo" + wompitest.SuffixAFEHold:     {wompi.BatchAFEOnHold, wompi.TransactionPending},
		"bo-normal":                        {wompi.BatchTotalPayment, wompi.TransactionApproved},
	}
	ids := map[string]string{}
	for ref := range want {
		res, err := c.CreatePayout(ctx, ref, batchr(ref, wompitest.AccountMain, txr(ref+"-a", "1234567890", 1000), txr(ref+"-b", "1234567891", 1000)))
		if err != nil {
			t.Fatal(err)
		}
		ids[ref] = res.PayoutID
	}
	s.SettleAll()
	for ref, w := range want {
		p, err := c.Payout(ctx, ids[ref])
		if err != nil || p.Status != w.batch {
			t.Errorf("%s: batch %v %v, want %s", ref, p.Status, err, w.batch)
		}
		for tx, err := range c.PayoutTransactions(ctx, ids[ref], wompi.TransactionsFilter{}) {
			if err != nil || tx.Status != w.tx {
				t.Errorf("%s: transaction %v %v, want %s", ref, tx.Status, err, w.tx)
			}
		}
	}
	acc1, _ := c.Accounts(ctx, wompi.AccountsFilter{})
	// Paid: bo-normal's 2,000; held: the AFE hold's 2,000; the rest back.
	if d := acc0[0].BalanceInCents - acc1[0].BalanceInCents; d != 4000 {
		t.Fatalf("balance moved by %d, want 4000", d)
	}

	s2, c2, _ := start(t, wompitest.Config{})
	res, err := c2.CreatePayout(ctx, "x"+wompitest.SuffixRejected, batchr("x"+wompitest.SuffixRejected, wompitest.AccountMain, txr("x-1", "1234567890", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	s2.SettleAll()
	if p, _ := c2.Payout(ctx, res.PayoutID); p.Status != wompi.BatchTotalPayment {
		t.Fatalf("knob off: %s", p.Status)
	}
}

// TestEveryRejectionCodeReachable: every documented D code by the name
// rule, and D18/D25 by the NIT they describe.
func TestEveryRejectionCodeReachable(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	var txs []wompi.TransactionRequest
	wantCode := map[string]string{}
	for i, r := range wompitest.RejectionCodes {
		tx := txr(fmt.Sprintf("rc-%d", i), "1234567890", 100)
		tx.Name = "Ana Test " + r.Code
		txs = append(txs, tx)
		wantCode[tx.Reference] = r.Code
	}
	nit := txr("rc-nit-letters", "1234567890", 100)
	nit.LegalIDType, nit.LegalID = "NIT", "900ABC456"
	zero := txr("rc-nit-zeros", "1234567890", 100)
	zero.LegalIDType, zero.LegalID = "NIT", "000000000"
	txs = append(txs, nit, zero)
	wantCode[nit.Reference], wantCode[zero.Reference] = "D18", "D25"
	plain := txr("rc-plain", "1234567890", 100)
	plain.Name = "Ana D99" // not a documented code: paid
	txs = append(txs, plain)
	res, err := c.CreatePayout(ctx, "rc", batchr("rc", wompitest.AccountMain, txs...))
	if err != nil {
		t.Fatal(err)
	}
	s.SettleAll()
	seen := 0
	for tx, err := range c.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		code, fail := wantCode[tx.Reference]
		switch {
		case !fail && tx.Status != wompi.TransactionApproved:
			t.Errorf("%s: %s", tx.Reference, tx.Status)
		case fail && (tx.Status != wompi.TransactionFailed || tx.FailureReason.Code != code):
			t.Errorf("%s: %s %+v, want FAILED %s", tx.Reference, tx.Status, tx.FailureReason, code)
		}
		seen++
	}
	if seen != len(txs) || len(wompitest.RejectionCodes) != 29 {
		t.Fatalf("saw %d of %d; %d codes", seen, len(txs), len(wompitest.RejectionCodes))
	}
}

// TestSettlementByBank: with BankSettlement a same-bank payee (the origin
// account's bank) is paid within the hour, an ACH payee later but within
// the day, on the simulator's clock; SettleScale shrinks both.
func TestSettlementByBank(t *testing.T) {
	for _, scale := range []float64{1, 1.0 / 3600} {
		s, c, _ := start(t, wompitest.Config{BankSettlement: true, SettleScale: scale})
		ctx := context.Background()
		same := txr("sb-same", "1234567890", 100) // AccountMain banks at 1007
		ach := txr("sb-ach", "1234567890", 100)
		ach.BankID = wompitest.BankID("1051")
		if _, err := c.CreatePayout(ctx, "sb", batchr("sb", wompitest.AccountMain, same, ach)); err != nil {
			t.Fatal(err)
		}
		hour := time.Duration(float64(time.Hour) * scale)
		if n := s.Advance(hour / 4); n != 0 {
			t.Fatalf("scale %v: %d settled within a quarter hour", scale, n)
		}
		if n := s.Advance(hour * 3 / 4); n != 1 {
			t.Fatalf("scale %v: %d settled within the hour, want the same-bank one", scale, n)
		}
		if n := s.Advance(23 * hour); n != 1 {
			t.Fatalf("scale %v: %d settled within the day, want the ACH one", scale, n)
		}
	}
}
