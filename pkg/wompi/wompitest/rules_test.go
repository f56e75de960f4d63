package wompitest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func TestValidationRules(t *testing.T) {
	s, _, _ := start(t, wompitest.Config{})
	valid := func() map[string]any {
		return map[string]any{"reference": "v", "accountId": wompitest.AccountMain, "paymentType": "PAYROLL",
			"transactions": []map[string]any{{"legalIdType": "CC", "legalId": "1000000000", "bankId": wompitest.BankID("1007"),
				"accountType": "AHORROS", "accountNumber": "1234567890", "name": "Ana", "email": "ana@example.co",
				"amount": 1000, "reference": "v-1"}}}
	}
	setTx := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["transactions"].([]map[string]any)[0][k] = v }
	}
	set := func(k string, v any) func(m map[string]any) { return func(m map[string]any) { m[k] = v } }
	tests := []struct {
		name   string
		mutate func(map[string]any)
		want   string // "" = accepted
	}{
		{"valid", func(map[string]any) {}, ""},
		{"legalIdType", setTx("legalIdType", "XX"), "legalIdType"},
		{"legalId empty", setTx("legalId", ""), "legalId"},
		{"bankId unknown", setTx("bankId", "00000000-0000-0000-0000-000000000000"), "bankId"},
		{"accountType", setTx("accountType", "CHEQUES"), "accountType"},
		{"accountNumber letters", setTx("accountNumber", "12345a"), "accountNumber"},
		{"accountNumber 5 digits", setTx("accountNumber", "12345"), "accountNumber"},
		{"accountNumber 21 digits", setTx("accountNumber", strings.Repeat("1", 21)), "accountNumber"},
		{"accountNumber zeros", setTx("accountNumber", "000000"), "accountNumber"},
		{"accountNumber 6 digits ok", setTx("accountNumber", "100000"), ""},
		{"name", setTx("name", " "), "name"},
		{"email", setTx("email", "ana.example.co"), "email"},
		{"amount zero", setTx("amount", 0), "amount"},
		{"amount negative", setTx("amount", -5), "amount"},
		{"tx reference", setTx("reference", ""), "transactions[0].reference"},
		{"batch reference", set("reference", ""), "reference is required"},
		{"paymentType", set("paymentType", "SALARY"), "paymentType"},
		{"accountId", set("accountId", "nope"), "accountId"},
		{"transactionStatus", set("transactionStatus", "PENDING"), "transactionStatus"},
		{"no transactions", set("transactions", []map[string]any{}), "transactions must not be empty"},
		{"dispersion format", set("dispersionDatetime", "2026-03-12 10:00"), "format"},
		{"dispersion today", set("dispersionDatetime", "2026-03-10T23:59"), "next day"},
		{"dispersion tomorrow ok", set("dispersionDatetime", "2026-03-11T00:00"), ""},
		{"recurring interval", func(m map[string]any) {
			m["dispersionDatetime"] = "2026-03-12T10:00"
			m["recurring"] = map[string]any{"interval": "week", "months": 3}
		}, "interval"},
		{"recurring upper-case interval", func(m map[string]any) {
			m["dispersionDatetime"] = "2026-03-12T10:00"
			m["recurring"] = map[string]any{"interval": "MONTH", "months": 3}
		}, "interval"},
		{"recurring months", func(m map[string]any) {
			m["dispersionDatetime"] = "2026-03-12T10:00"
			m["recurring"] = map[string]any{"interval": "month", "months": 4}
		}, "months"},
		{"recurring without dispersion", set("recurring", map[string]any{"interval": "month", "months": 3}), "requires dispersionDatetime"},
		{"recurring ok", func(m map[string]any) {
			m["dispersionDatetime"] = "2026-03-12T10:00"
			m["recurring"] = map[string]any{"interval": "biweek", "months": 12}
		}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.mutate(m)
			body, _ := json.Marshal(m)
			status, resp := raw(t, s, "POST", "/v1/payouts", map[string]string{wompi.HeaderIdempotencyKey: fmt.Sprintf("val-%d", i)}, body)
			if tt.want == "" {
				if status != 201 {
					t.Fatalf("want 201, got %d %v", status, resp)
				}
				return
			}
			msgs, _ := resp["message"].([]any)
			if status != 400 || resp["code"] != wompi.CodeValidation || len(msgs) == 0 {
				t.Fatalf("want 400 with a message list, got %d %v", status, resp)
			}
			if !strings.Contains(fmt.Sprint(msgs), tt.want) {
				t.Fatalf("messages %v lack %q", msgs, tt.want)
			}
		})
	}
	t.Run("idempotency-key format", func(t *testing.T) {
		body, _ := json.Marshal(valid())
		status, resp := raw(t, s, "POST", "/v1/payouts", map[string]string{wompi.HeaderIdempotencyKey: "bad_key"}, body)
		if status != 400 || !strings.Contains(fmt.Sprint(resp["message"]), "idempotency-key") {
			t.Fatalf("got %d %v", status, resp)
		}
	})
	t.Run("invalid JSON", func(t *testing.T) {
		status, _ := raw(t, s, "POST", "/v1/payouts", nil, []byte(`{"reference":`))
		if status != 400 {
			t.Fatalf("got %d", status)
		}
	})
}

func TestAuthEnforced(t *testing.T) {
	s, _, _ := start(t, wompitest.Config{APIKey: "key-1", PrincipalID: "pid-1"})
	paths := []struct{ method, path string }{
		{"GET", "/v1/banks"}, {"GET", "/v1/accounts"}, {"GET", "/v1/limits"}, {"POST", "/v1/payouts"}, {"POST", "/v1/payouts/file"},
		{"GET", "/v1/payouts"}, {"GET", "/v1/payouts/x"}, {"GET", "/v1/payouts/x/transactions"}, {"GET", "/v1/payouts/x/transactions/y"},
		{"GET", "/v1/transactions/r"}, {"GET", "/v1/reports/payouts"}, {"GET", "/v1/reports/presigned_url"}, {"GET", "/v1/health"},
		{"POST", "/v1/accounts/balance-recharge"},
	}
	creds := []map[string]string{
		{wompi.HeaderAPIKey: "", wompi.HeaderPrincipalID: ""},
		{wompi.HeaderAPIKey: "key-2"},
		{wompi.HeaderPrincipalID: "pid-2"},
		{wompi.HeaderAPIKey: "key-1", wompi.HeaderPrincipalID: ""},
	}
	for _, p := range paths {
		for i, h := range creds {
			if status, resp := raw(t, s, p.method, p.path, h, nil); status != 401 || resp["code"] != wompi.CodeUnauthorized {
				t.Errorf("%s %s creds#%d: %d %v", p.method, p.path, i, status, resp)
			}
		}
	}
	if status, _ := raw(t, s, "GET", "/v1/banks", nil, nil); status != 200 {
		t.Fatalf("good credentials: %d", status)
	}
}

func TestIdempotencyKeyExpiresAfter24h(t *testing.T) {
	s, c, clock := start(t, wompitest.Config{})
	ctx := context.Background()
	create := func() error {
		_, err := c.CreatePayout(ctx, "same-key", batchr("idem", wompitest.AccountMain, txr("idem-1", "1234567890", 1000)))
		return err
	}
	if err := create(); err != nil {
		t.Fatal(err)
	}
	if err := create(); !wompi.IsCode(err, wompi.CodeIdempotencyReused) || !wompi.IsStatus(err, 409) {
		t.Fatalf("same key at once: %v", err)
	}
	clock.Advance(24*time.Hour - time.Second)
	if err := create(); !wompi.IsCode(err, wompi.CodeIdempotencyReused) {
		t.Fatalf("same key after 23:59:59: %v", err)
	}
	clock.Advance(time.Second)
	if err := create(); err != nil {
		t.Fatalf("after 24 h the key has expired: %v", err)
	}
	if e := s.BatchLedger()["idem"]; e.Accepted != 2 {
		t.Fatalf("batch accepted %d times, want 2", e.Accepted)
	}
}

func TestBalanceDebitRefundAndRecharge(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{SettleJitter: -1})
	ctx := context.Background()
	// AccountLow starts at 10,000,000 cents.
	_, err := c.CreatePayout(ctx, "bal-1", batchr("bal-1", wompitest.AccountLow,
		txr("bal-1a", "1234567890", 4_000_000), txr("bal-1b", "1234560007", 2_000_000))) // D07: refunded
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Balance(wompitest.AccountLow); b != 4_000_000 {
		t.Fatalf("debited at creation: balance %d", b)
	}
	_, err = c.CreatePayout(ctx, "bal-2", batchr("bal-2", wompitest.AccountLow, txr("bal-2a", "1234567890", 5_000_000)))
	if !wompi.IsCode(err, wompi.CodeInsufficientBalance) {
		t.Fatalf("want EXC_008: %v", err)
	}
	s.SettleAll()
	if b, _ := s.Balance(wompitest.AccountLow); b != 6_000_000 {
		t.Fatalf("FAILED must refund: balance %d", b)
	}
	if _, err := c.CreatePayout(ctx, "bal-2", batchr("bal-2", wompitest.AccountLow, txr("bal-2a", "1234567890", 5_000_000))); err != nil {
		t.Fatalf("after the refund (same key: the refused call did not consume it): %v", err)
	}
	_, err = c.CreatePayout(ctx, "bal-3", batchr("bal-3", wompitest.AccountLow, txr("bal-3a", "1234567890", 3_000_000)))
	if !wompi.IsCode(err, wompi.CodeInsufficientBalance) {
		t.Fatalf("want EXC_008: %v", err)
	}
	if _, err := c.RechargeBalance(ctx, wompitest.AccountLow, 2_000_000); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePayout(ctx, "bal-3", batchr("bal-3", wompitest.AccountLow, txr("bal-3a", "1234567890", 3_000_000))); err != nil {
		t.Fatalf("after a recharge: %v", err)
	}
	accts, _ := c.Accounts(ctx, wompi.AccountsFilter{})
	i := slices.IndexFunc(accts, func(a wompi.Account) bool { return a.ID == wompitest.AccountLow })
	if accts[i].BalanceInCents != 0 {
		t.Fatalf("GET /accounts balance %d", accts[i].BalanceInCents)
	}
}

func TestDailyLimitsPerBogotaDay(t *testing.T) {
	s, c, clock := start(t, wompitest.Config{ClientDailyLimitInCents: 25_000_000_000})
	ctx := context.Background()
	// AccountSecondary: 20,000,000,000 per day.
	if _, err := c.CreatePayout(ctx, "lim-1", batchr("lim-1", wompitest.AccountSecondary, txr("lim-1", "1234567890", 15_000_000_000))); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreatePayout(ctx, "lim-2", batchr("lim-2", wompitest.AccountSecondary, txr("lim-2", "1234567890", 5_000_000_001)))
	if !wompi.IsCode(err, wompi.CodeDailyLimit) {
		t.Fatalf("account limit: %v", err)
	}
	// The client-wide limit (25,000,000,000) binds across accounts.
	if _, err := c.CreatePayout(ctx, "lim-3", batchr("lim-3", wompitest.AccountMain, txr("lim-3", "1234567890", 10_000_000_000))); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePayout(ctx, "lim-4", batchr("lim-4", wompitest.AccountMain, txr("lim-4", "1234567890", 1)))
	if !wompi.IsCode(err, wompi.CodeDailyLimit) {
		t.Fatalf("client limit: %v", err)
	}
	// 23:59 in Bogota is 04:59 UTC the next day: still the same Bogota day.
	clock.Advance(13*time.Hour + 59*time.Minute)
	_, err = c.CreatePayout(ctx, "lim-4", batchr("lim-4", wompitest.AccountMain, txr("lim-4", "1234567890", 1)))
	if !wompi.IsCode(err, wompi.CodeDailyLimit) {
		t.Fatalf("23:59 Bogota is the same day: %v", err)
	}
	clock.Advance(time.Minute)
	if _, err := c.CreatePayout(ctx, "lim-4", batchr("lim-4", wompitest.AccountMain, txr("lim-4", "1234567890", 1))); err != nil {
		t.Fatalf("00:00 Bogota is a new day: %v", err)
	}
	l, _ := c.LimitsOn(ctx, t0)
	if l.Limits.DailyConsumed != 25_000_000_000 || l.Limits.DailyAvailable != 0 || l.NumberOfBatchesConsumed != 2 {
		t.Fatalf("yesterday's limits: %+v", l)
	}
	_ = s
}

// TestDailyBatchCapAndScheduledDay: the 3,800 cap counts the batches a
// client SENDS in a day [doc], so a batch scheduled for tomorrow takes
// today's slot; its amount counts on tomorrow [ours].
func TestDailyBatchCapAndScheduledDay(t *testing.T) {
	_, c, _ := start(t, wompitest.Config{DailyBatchCap: 3})
	ctx := context.Background()
	for i := range 2 {
		if _, err := c.CreatePayout(ctx, fmt.Sprintf("cap-%d", i), batchr(fmt.Sprintf("cap-%d", i), wompitest.AccountMain, txr(fmt.Sprintf("cap-%d", i), "1234567890", 100))); err != nil {
			t.Fatal(err)
		}
	}
	req := batchr("cap-sched", wompitest.AccountMain, txr("cap-sched", "1234567890", 700))
	req.DispersionDatetime = t0.Add(24 * time.Hour)
	if _, err := c.CreatePayout(ctx, "cap-sched", req); err != nil {
		t.Fatalf("scheduled batch: %v", err)
	}
	_, err := c.CreatePayout(ctx, "cap-3", batchr("cap-3", wompitest.AccountMain, txr("cap-3", "1234567890", 100)))
	if !wompi.IsCode(err, wompi.CodeDailyBatchLimit) || !wompi.IsDeferrable(err) {
		t.Fatalf("4th batch sent today (the scheduled one took a slot): %v", err)
	}
	req = batchr("cap-sched-2", wompitest.AccountMain, txr("cap-sched-2", "1234567890", 700))
	req.DispersionDatetime = t0.Add(48 * time.Hour)
	if _, err := c.CreatePayout(ctx, "cap-sched-2", req); !wompi.IsCode(err, wompi.CodeDailyBatchLimit) {
		t.Fatalf("a scheduled batch sent on a full day: %v", err)
	}
	today, _ := c.Limits(ctx)
	tomorrow, _ := c.LimitsOn(ctx, t0.Add(24*time.Hour))
	if today.NumberOfBatchesConsumed != 3 || today.Limits.DailyConsumed != 200 ||
		tomorrow.NumberOfBatchesConsumed != 0 || tomorrow.Limits.DailyConsumed != 700 || tomorrow.NumberOfTransactionsConsumed != 1 {
		t.Fatalf("today %+v tomorrow %+v", today, tomorrow)
	}
}

func TestOutcomeRules(t *testing.T) {
	tests := []struct {
		account, forced string
		status          wompi.TransactionStatus
		code            string
	}{
		{"1234567890", "", wompi.TransactionApproved, ""},
		{"1234567002", "", wompi.TransactionFailed, "D02"},
		{"1234567007", "", wompi.TransactionFailed, "D07"},
		{"1234567010", "", wompi.TransactionFailed, "D10"},
		{"1234567011", "", wompi.TransactionFailed, "D11"},
		{"1234567019", "", wompi.TransactionFailed, "D19"},
		{"1234567021", "", wompi.TransactionFailed, "D21"},
		{"1234567049", "", wompi.TransactionFailed, "D49"},
		{"9991234567", "", wompi.TransactionCancelled, ""},
		{"1234567007", "APPROVED", wompi.TransactionApproved, ""},
		{"9991234567", "APPROVED", wompi.TransactionApproved, ""},
		{"1234567890", "FAILED", wompi.TransactionFailed, "D07"},
		{"1234567019", "FAILED", wompi.TransactionFailed, "D19"},
	}
	s, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	ids := make([]string, len(tests))
	for i, tt := range tests {
		req := batchr(fmt.Sprintf("rule-%d", i), wompitest.AccountMain, txr(fmt.Sprintf("rule-%d", i), tt.account, 1000))
		req.TransactionStatus = tt.forced
		res, err := c.CreatePayout(ctx, fmt.Sprintf("rule-%d", i), req)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.PayoutID
	}
	s.SettleAll()
	for i, tt := range tests {
		for got, err := range c.PayoutTransactions(ctx, ids[i], wompi.TransactionsFilter{}) {
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status || got.FailureReason.Code != tt.code {
				t.Errorf("%s forced=%q: got %s %q, want %s %q", tt.account, tt.forced, got.Status, got.FailureReason.Code, tt.status, tt.code)
			}
			if tt.status == wompi.TransactionApproved && got.AppliedAt.IsZero() {
				t.Errorf("%s: APPROVED without appliedAt", tt.account)
			}
		}
	}
}

func TestStateMachineAndWebhooks(t *testing.T) {
	rcv := newReceiver(t, "whsec")
	s, c, _ := start(t, wompitest.Config{EventsSecret: "whsec", SettleJitter: 10 * time.Second, WebhookWorkers: 1})
	s.SetWebhookURL(rcv.URL)
	ctx := context.Background()
	res, err := c.CreatePayout(ctx, "sm", batchr("sm", wompitest.AccountMain,
		txr("sm-a", "1234567890", 1000), txr("sm-b", "1234567007", 2000), txr("sm-c", "1234567891", 3000)))
	if err != nil {
		t.Fatal(err)
	}
	sawPartial := false
	for range 200 {
		if s.Advance(100*time.Millisecond) > 0 && s.Pending() > 0 {
			p, _ := c.Payout(ctx, res.PayoutID)
			if p.Status != wompi.BatchPartialPayment {
				t.Fatalf("some final, some not: batch %s", p.Status)
			}
			sawPartial = true
		}
		if s.Pending() == 0 {
			break
		}
	}
	if !sawPartial {
		t.Fatal("never saw PARTIAL_PAYMENT")
	}
	p, _ := c.Payout(ctx, res.PayoutID)
	if p.Status != wompi.BatchTotalPayment {
		t.Fatalf("final batch status %s", p.Status)
	}
	waitHooks(t, s)
	evs, _ := rcv.snapshot()
	var got []string
	txStatus := map[string]wompi.TransactionStatus{}
	for _, ev := range evs {
		got = append(got, describe(ev))
		if ev.Transaction != nil {
			txStatus[ev.Transaction.ID] = ev.Transaction.Status
			if ev.Transaction.PayoutID != res.PayoutID || ev.Transaction.Payee.AccountNumber == "" {
				t.Errorf("transaction event: %+v", ev.Transaction)
			}
		}
	}
	if len(evs) != 6 || !strings.HasPrefix(got[0], "payout:sm:PENDING") || got[len(got)-1] != "payout:sm:TOTAL_PAYMENT" ||
		!slices.Contains(got, "payout:sm:PARTIAL_PAYMENT") || len(txStatus) != 3 {
		t.Fatalf("events: %v", got)
	}
	for _, b := range rcv.bodies {
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if tx, ok := m["data"].(map[string]any)["transaction"].(map[string]any); ok {
			if _, has := tx["reference"]; has {
				t.Fatal("transaction.updated must carry no reference")
			}
		}
	}
}

func TestScheduledBatchSettlesAfterDispersion(t *testing.T) {
	s, c, clock := start(t, wompitest.Config{SettleJitter: -1})
	ctx := context.Background()
	req := batchr("sch", wompitest.AccountMain, txr("sch-1", "1234567890", 1000))
	req.DispersionDatetime = time.Date(2026, 3, 12, 8, 0, 0, 0, wompi.Bogota)
	res, err := c.CreatePayout(ctx, "sch", req)
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(time.Date(2026, 3, 12, 8, 0, 0, 0, wompi.Bogota))
	if n := s.Tick(); n != 0 {
		t.Fatalf("settled %d at the dispersion instant, before the settle delay", n)
	}
	if n := s.Advance(time.Second); n != 1 {
		t.Fatalf("settled %d after dispersion + delay", n)
	}
	if p, _ := c.Payout(ctx, res.PayoutID); p.Status != wompi.BatchTotalPayment {
		t.Fatalf("status %s", p.Status)
	}
}

func TestDuplicateReferencesAreAcceptedAndAudited(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	// Three times: the ledger keeps every acceptance of a reference, in
	// order, after the first.
	var payouts []string
	for i := range 3 {
		res, err := c.CreatePayout(ctx, fmt.Sprintf("dup-%d", i), batchr("dup-batch", wompitest.AccountMain,
			txr("payee-1", "1234567890", 5000), txr(fmt.Sprintf("other-%d", i), "1234567891", 10)))
		if err != nil {
			t.Fatalf("a reused reference must be accepted: %v", err)
		}
		payouts = append(payouts, res.PayoutID)
	}
	if d := s.Duplicates(); !slices.Equal(d, []string{"payee-1"}) {
		t.Fatalf("Duplicates = %v", d)
	}
	if d := s.DuplicateBatches(); !slices.Equal(d, []string{"dup-batch"}) {
		t.Fatalf("DuplicateBatches = %v", d)
	}
	if p := s.PaidMoreThanOnce(); len(p) != 0 {
		t.Fatalf("nothing settled yet: %v", p)
	}
	s.SettleAll()
	if p := s.PaidMoreThanOnce(); !slices.Equal(p, []string{"payee-1"}) {
		t.Fatalf("PaidMoreThanOnce = %v", p)
	}
	e := s.Ledger()["payee-1"]
	if e.Accepted != 3 || e.Approved != 3 || !slices.Equal(e.PayoutIDs, payouts) || len(slices.Compact(slices.Clone(e.TransactionIDs))) != 3 ||
		!slices.Equal(e.AmountsInCents, []int64{5000, 5000, 5000}) || !slices.Equal(e.BatchReferences, []string{"dup-batch", "dup-batch", "dup-batch"}) {
		t.Fatalf("ledger entry %+v", e)
	}
	status, body := raw(t, s, "GET", "/_sim/ledger", nil, nil)
	if status != 200 || fmt.Sprint(body["duplicates"]) != "[payee-1]" || fmt.Sprint(body["paidMoreThanOnce"]) != "[payee-1]" {
		t.Fatalf("/_sim/ledger: %d %v", status, body)
	}
	// The compact ledger streams the same facts, one reference per line.
	resp, err := http.Get(s.URL() + "/_sim/ledger/amounts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := map[string]wompitest.LedgerAmounts{}
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var l wompitest.LedgerAmounts
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines[l.Reference] = l
	}
	if l := lines["payee-1"]; len(lines) != 4 || l.Approved != 3 || !slices.Equal(l.AmountsInCents, []int64{5000, 5000, 5000}) ||
		!slices.Equal(lines["other-1"].AmountsInCents, []int64{10}) {
		t.Fatalf("/_sim/ledger/amounts: %+v", lines)
	}
	if tot := s.Totals(); tot.Batches != 3 || tot.Transactions != 6 || tot.Approved != 6 {
		t.Fatalf("totals %+v", tot)
	}
}

// TestPayoutTransactionsFilters: each filter of a payout's transactions
// narrows the listing on its own; with none, every transaction is listed.
func TestPayoutTransactionsFilters(t *testing.T) {
	_, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	a, b, x := txr("flt-a", "1111111111", 100), txr("flt-b", "2222222222", 200), txr("flt-c", "3333333333", 300)
	b.Name, x.Name = "Bruno Díaz", "Carla Gómez"
	res, err := c.CreatePayout(ctx, "flt", batchr("flt", wompitest.AccountMain, a, b, x))
	if err != nil {
		t.Fatal(err)
	}
	refs := func(f wompi.TransactionsFilter) []string {
		var out []string
		for tx, err := range c.PayoutTransactions(ctx, res.PayoutID, f) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tx.Reference)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		f    wompi.TransactionsFilter
		want []string
	}{
		{wompi.TransactionsFilter{}, []string{"flt-a", "flt-b", "flt-c"}},
		{wompi.TransactionsFilter{Limit: 2, Page: 2}, []string{"flt-c"}},
		{wompi.TransactionsFilter{Reference: "flt-b"}, []string{"flt-b"}},
		{wompi.TransactionsFilter{AccountNumber: "3333333333"}, []string{"flt-c"}},
		{wompi.TransactionsFilter{PayeeName: "díaz"}, []string{"flt-b"}},
		{wompi.TransactionsFilter{Status: wompi.TransactionApproved}, nil},
	} {
		if got := refs(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("filter %+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestRealClockLoopSettles(t *testing.T) {
	s := wompitest.NewTestServer(t, wompitest.Config{SettleDelay: time.Millisecond, SettleJitter: -1, SettleInterval: 5 * time.Millisecond})
	c := s.Client(nil)
	ctx := context.Background()
	res, err := c.CreatePayout(ctx, "rt", batchr("rt", wompitest.AccountMain, txr("rt-1", "1234567890", 100)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p, _ := c.Payout(ctx, res.PayoutID); p.Status == wompi.BatchTotalPayment {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the background loop never settled the batch")
}

func TestBankIDs(t *testing.T) {
	if wompitest.BankID("1007") != wompitest.BankID("1007") || wompitest.BankID("1007") == wompitest.BankID("1507") {
		t.Fatal("BankID must be deterministic and distinct")
	}
}
