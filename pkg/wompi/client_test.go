package wompi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// t0 is 10:00 in Bogota.
var t0 = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

func newSim(t *testing.T, cfg wompitest.Config) (*wompitest.Server, *wompi.Client, *wompitest.ManualClock) {
	t.Helper()
	clock := wompitest.NewManualClock(t0)
	if cfg.Clock == nil {
		cfg.Clock = clock
	}
	if cfg.WebhookBackoff == 0 {
		cfg.WebhookBackoff = time.Millisecond
	}
	sim := wompitest.NewTestServer(t, cfg)
	return sim, sim.Client(nil), clock
}

func tx(ref, account string, amount int64) wompi.TransactionRequest {
	return wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000000", BankID: wompitest.BankID("1007"),
		AccountType: "AHORROS", AccountNumber: account, Name: "Ana Pérez", Email: "ana@example.co", Amount: amount, Reference: ref}
}

func batch(ref string, txs ...wompi.TransactionRequest) *wompi.CreatePayoutRequest {
	return &wompi.CreatePayoutRequest{Reference: ref, AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypePayroll, Transactions: txs}
}

func mustErr(t *testing.T, err error) *wompi.Error {
	t.Helper()
	we, ok := wompi.AsError(err)
	if !ok {
		t.Fatalf("want *wompi.Error, got %T %v", err, err)
	}
	return we
}

func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatalf("iterate: %v", err)
		}
		out = append(out, v)
	}
	return out
}

func TestClientQueries(t *testing.T) {
	sim, c, _ := newSim(t, wompitest.Config{})
	ctx := context.Background()

	banks, err := c.Banks(ctx) // bare answer
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(banks, func(b wompi.Bank) bool { return b.Code == "1507" })
	if len(banks) < 50 || i < 0 || banks[i].Name != "NEQUI" || banks[i].ID != wompitest.BankID("1507") || !banks[i].IsElectronicDeposit {
		t.Fatalf("banks: %d, nequi %+v", len(banks), banks[max(i, 0)])
	}

	accts, err := c.Accounts(ctx, wompi.AccountsFilter{})
	if err != nil || len(accts) != 3 || accts[0].ID != wompitest.AccountMain || accts[0].BalanceInCents != 1_000_000_000_000 || accts[0].Bank.Code != "1007" {
		t.Fatalf("accounts: %+v %v", accts, err)
	}
	byBank, err := c.Accounts(ctx, wompi.AccountsFilter{BankCodes: []string{"1051"}, Status: wompi.AccountActive})
	if err != nil || len(byBank) != 1 || byBank[0].ID != wompitest.AccountSecondary {
		t.Fatalf("bankCodes filter: %+v %v", byBank, err)
	}
	byName, err := c.Accounts(ctx, wompi.AccountsFilter{BankCodes: []string{"BANCO_BOGOTA"}})
	if err != nil || len(byName) != 1 || byName[0].ID != wompitest.AccountLow {
		t.Fatalf("bankCodes by name: %+v %v", byName, err)
	}

	if _, err := c.CreatePayout(ctx, "k-1", batch("b-1", tx("r-1", "1234567890", 150_000), tx("r-2", "1234567891", 50_000))); err != nil {
		t.Fatal(err)
	}
	lim, err := c.Limits(ctx) // bare answer
	if err != nil {
		t.Fatal(err)
	}
	if lim.NumberOfTransactionsConsumed != 2 || lim.Limits.DailyConsumed != 200_000 || lim.NumberOfBatchesConsumed != 1 ||
		lim.Limits.DailyAvailable != wompitest.DefaultClientDailyLimit-200_000 || lim.Limits.DailyLimit != wompitest.DefaultClientDailyLimit {
		t.Fatalf("limits: %+v", lim)
	}
	ai := slices.IndexFunc(lim.Accounts, func(a wompi.AccountLimits) bool { return a.AccountID == wompitest.AccountMain })
	if ai < 0 || lim.Accounts[ai].DailyConsumed != 200_000 {
		t.Fatalf("account limits: %+v", lim.Accounts)
	}
	tomorrow, err := c.LimitsOn(ctx, t0.Add(24*time.Hour))
	if err != nil || tomorrow.Limits.DailyConsumed != 0 || tomorrow.Date != "2026-03-11" {
		t.Fatalf("limits tomorrow: %+v %v", tomorrow, err)
	}

	h, err := c.Health(ctx)
	if err != nil || h.Status != wompi.HealthHealthy || len(h.Services) != 4 {
		t.Fatalf("health: %+v %v", h, err)
	}
	sim.SetUnhealthy(true)
	h, err = c.Health(ctx)
	if err != nil || h.Status != wompi.HealthUnhealthy {
		t.Fatalf("unhealthy health must be a payload, not an error: %+v %v", h, err)
	}

	r, err := c.RechargeBalance(ctx, wompitest.AccountLow, 100_000) // bare answer
	if err != nil || r.BalanceInCents != 10_100_000 {
		t.Fatalf("recharge: %+v %v", r, err)
	}
	for _, amt := range []int64{99_999, 5_000_000_001} {
		_, err := c.RechargeBalance(ctx, wompitest.AccountLow, amt)
		if we := mustErr(t, err); we.HTTPStatus != 400 || we.Retryable() {
			t.Fatalf("recharge %d: %v", amt, err)
		}
	}
}

func TestClientPayoutLifecycleAndPagination(t *testing.T) {
	sim, c, _ := newSim(t, wompitest.Config{})
	ctx := context.Background()
	var txs []wompi.TransactionRequest
	for i := range 25 {
		acct := fmt.Sprintf("12345%05d", i+100) // no failure suffix
		if i == 3 {
			acct = "1234560007" // D07
		}
		txs = append(txs, tx(fmt.Sprintf("life-%02d", i), acct, int64(1000+i)))
	}
	res, err := c.CreatePayout(ctx, "life-key", batch("life", txs...))
	if err != nil {
		t.Fatal(err)
	}
	if res.PayoutID == "" || res.Transactions != 25 || res.Success != 25 || res.TraceID == "" {
		t.Fatalf("create result: %+v", res)
	}
	p, err := c.Payout(ctx, res.PayoutID)
	if err != nil || p.Status != wompi.BatchPending || p.TotalTransactions != 25 || p.Reference != "life" || p.CreatedAt.IsZero() {
		t.Fatalf("payout: %+v %v", p, err)
	}
	// Pages of 7: 4 pages.
	got := collect(t, c.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{Limit: 7}))
	if len(got) != 25 {
		t.Fatalf("paged transactions: %d", len(got))
	}
	for i, g := range got {
		if g.Reference != txs[i].Reference || g.Status != wompi.TransactionPending || g.PayeeInfo.AccountNumber != txs[i].AccountNumber {
			t.Fatalf("transaction %d: %+v", i, g)
		}
	}
	refs := collect(t, c.PayoutTransactionRefs(ctx, res.PayoutID, wompi.TransactionsFilter{Limit: 7}))
	if len(refs) != 25 {
		t.Fatalf("paged transaction refs: %d", len(refs))
	}
	for i, r := range refs {
		if r.ID != got[i].ID || r.Reference != got[i].Reference || r.Status != got[i].Status {
			t.Fatalf("ref %d: %+v, want %+v", i, r, got[i])
		}
	}
	one, err := c.PayoutTransaction(ctx, res.PayoutID, got[3].ID)
	if err != nil || one.Reference != "life-03" {
		t.Fatalf("one transaction: %+v %v", one, err)
	}
	_, err = c.PayoutTransaction(ctx, res.PayoutID, "nope")
	if we := mustErr(t, err); we.HTTPStatus != 404 || we.Retryable() {
		t.Fatalf("unknown transaction: %v", err)
	}

	sim.SettleAll()
	p, _ = c.Payout(ctx, res.PayoutID)
	if p.Status != wompi.BatchTotalPayment {
		t.Fatalf("after settlement: %s", p.Status)
	}
	failed := collect(t, c.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{Status: wompi.TransactionFailed}))
	if len(failed) != 1 || failed[0].Reference != "life-03" || failed[0].FailureReason.Code != "D07" {
		t.Fatalf("failed filter: %+v", failed)
	}
	if f := collect(t, c.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{Reference: "life-10", AccountNumber: txs[10].AccountNumber, PayeeName: "ana"})); len(f) != 1 {
		t.Fatalf("reference+accountNumber+payeeName filter: %d", len(f))
	}
	byRef := collect(t, c.TransactionsByReference(ctx, "life", wompi.ReferenceFilter{Limit: 10, Status: wompi.TransactionApproved}))
	if len(byRef) != 24 {
		t.Fatalf("by batch reference, approved: %d", len(byRef))
	}

	// Many batches, listed across pages with every filter.
	for i := range 11 {
		if _, err := c.CreatePayout(ctx, fmt.Sprintf("k-%d", i), batch(fmt.Sprintf("b-%d", i), tx(fmt.Sprintf("t-%d", i), "1234567890", 1000))); err != nil {
			t.Fatal(err)
		}
	}
	all := collect(t, c.Payouts(ctx, wompi.PayoutsFilter{Limit: 5}))
	if len(all) != 12 {
		t.Fatalf("payouts across pages: %d", len(all))
	}
	pending := collect(t, c.Payouts(ctx, wompi.PayoutsFilter{Statuses: []wompi.BatchStatus{wompi.BatchPending, wompi.BatchPartialPayment}, Limit: 4,
		FromDate: "2026-03-10", ToDate: "2026-03-10"}))
	if len(pending) != 11 {
		t.Fatalf("pending payouts: %d", len(pending))
	}
	if n := collect(t, c.Payouts(ctx, wompi.PayoutsFilter{FromDate: "2026-03-11"})); len(n) != 0 {
		t.Fatalf("fromDate filter: %d", len(n))
	}
	if n := collect(t, c.Payouts(ctx, wompi.PayoutsFilter{ID: res.PayoutID})); len(n) != 1 || n[0].ID != res.PayoutID {
		t.Fatalf("id filter: %+v", n)
	}
	found, err := c.FindPayoutsByReference(ctx, "b-7")
	if err != nil || len(found) != 1 || found[0].Reference != "b-7" {
		t.Fatalf("find by reference: %+v %v", found, err)
	}
	pg, err := c.PayoutsPage(ctx, wompi.PayoutsFilter{Limit: 5, Page: 3})
	if err != nil || pg.Page != 3 || pg.Pages != 3 || pg.Total != 12 || len(pg.Records) != 2 {
		t.Fatalf("one page: %+v %v", pg, err)
	}
	// Breaking out of an iterator early stops paging.
	n := 0
	for range c.Payouts(ctx, wompi.PayoutsFilter{Limit: 2}) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatal("early break")
	}
}

func TestClientScheduledAndRecurring(t *testing.T) {
	sim, c, clock := newSim(t, wompitest.Config{})
	ctx := context.Background()
	req := batch("sched", tx("s-1", "1234567890", 5000))
	req.DispersionDatetime = t0.Add(48 * time.Hour)
	req.Recurring = &wompi.Recurring{Interval: "BIWEEK", Months: 3}
	res, err := c.CreatePayout(ctx, "sched-key", req)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Payout(ctx, res.PayoutID)
	if p.DispersionDatetime != "2026-03-12T10:00" || p.Recurring == nil || p.Recurring.Interval != "biweek" {
		t.Fatalf("scheduled payout: %+v", p)
	}
	if d, ok := p.Dispersion(); !ok || !d.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("Dispersion() = %v %v", d, ok)
	}
	clock.Advance(47 * time.Hour)
	sim.Tick()
	if p, _ := c.Payout(ctx, res.PayoutID); p.Status != wompi.BatchPending {
		t.Fatalf("settled before its dispersion time: %s", p.Status)
	}
	sim.SettleAll()
	if p, _ := c.Payout(ctx, res.PayoutID); p.Status != wompi.BatchTotalPayment {
		t.Fatalf("after dispersion: %s", p.Status)
	}
}

func TestClientErrorPaths(t *testing.T) {
	sim, c, _ := newSim(t, wompitest.Config{})
	ctx := context.Background()

	t.Run("local key validation", func(t *testing.T) {
		for _, k := range []string{"", "bad key", strings.Repeat("k", 65)} {
			if _, err := c.CreatePayout(ctx, k, batch("x", tx("x", "1234567890", 1))); !errors.Is(err, wompi.ErrInvalidIdempotencyKey) {
				t.Fatalf("%q: %v", k, err)
			}
		}
		if _, err := c.Payout(ctx, ""); !errors.Is(err, wompi.ErrInvalidRequest) {
			t.Fatalf("empty id: %v", err)
		}
	})
	t.Run("400 message list", func(t *testing.T) {
		bad := batch("", tx("", "0000000", 0))
		bad.PaymentType = "SALARY"
		bad.Transactions[0].BankID = "not-a-bank"
		_, err := c.CreatePayout(ctx, "bad-1", bad)
		we := mustErr(t, err)
		if we.HTTPStatus != 400 || we.Retryable() || we.OutcomeUnknown || len(we.Messages) < 5 || we.TraceID == "" {
			t.Fatalf("validation error: %+v", we)
		}
		joined := strings.Join(we.Messages, "|")
		for _, want := range []string{"reference is required", "paymentType", "bankId", "accountNumber", "amount", "transactions[0].reference"} {
			if !strings.Contains(joined, want) {
				t.Errorf("missing %q in %v", want, we.Messages)
			}
		}
	})
	t.Run("401", func(t *testing.T) {
		bad, _ := wompi.New(wompi.Config{BaseURL: sim.BaseURL(), APIKey: "wrong", PrincipalID: sim.Config().PrincipalID})
		_, err := bad.Banks(ctx)
		if we := mustErr(t, err); we.HTTPStatus != 401 || we.Code != wompi.CodeUnauthorized || we.Retryable() {
			t.Fatalf("401: %v", err)
		}
		if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), sim.Config().PrincipalID) {
			t.Fatalf("credentials in error: %v", err)
		}
	})
	t.Run("409 EXC_022", func(t *testing.T) {
		if _, err := c.CreatePayout(ctx, "dup-key", batch("d-1", tx("d-1", "1234567890", 1000))); err != nil {
			t.Fatal(err)
		}
		_, err := c.CreatePayout(ctx, "dup-key", batch("d-2", tx("d-2", "1234567890", 1000)))
		we := mustErr(t, err)
		if we.HTTPStatus != 409 || !wompi.IsCode(err, wompi.CodeIdempotencyReused) || we.Retryable() {
			t.Fatalf("409: %v", err)
		}
		if e, ok := sim.LedgerEntry("d-2"); ok {
			t.Fatalf("a reused key must not create a batch: %+v", e)
		}
	})
	t.Run("EXC_008", func(t *testing.T) {
		req := batch("poor", tx("poor-1", "1234567890", 10_000_001))
		req.AccountID = wompitest.AccountLow
		_, err := c.CreatePayout(ctx, "poor-key", req)
		if !wompi.IsCode(err, wompi.CodeInsufficientBalance) || !wompi.IsDeferrable(err) || wompi.IsRetryable(err) {
			t.Fatalf("EXC_008: %v", err)
		}
	})
	t.Run("EXC_017", func(t *testing.T) {
		req := batch("big", tx("big-1", "1234567890", 20_000_000_001))
		req.AccountID = wompitest.AccountSecondary
		_, err := c.CreatePayout(ctx, "big-key", req)
		if !wompi.IsCode(err, wompi.CodeDailyLimit) || !wompi.IsDeferrable(err) {
			t.Fatalf("EXC_017: %v", err)
		}
	})
	t.Run("5xx retryable with the same key", func(t *testing.T) {
		sim.UpdateFaults(func(f *wompitest.Faults) { f.ErrorRate = 1 })
		_, err := c.CreatePayout(ctx, "flaky-key", batch("flaky", tx("flaky-1", "1234567890", 1000)))
		we := mustErr(t, err)
		if we.HTTPStatus != 503 || !we.Retryable() || we.Code != wompi.CodeServiceUnavailable || !we.OutcomeUnknown {
			t.Fatalf("503: %+v", we)
		}
		_, gerr := c.Banks(ctx)
		if !wompi.IsRetryable(gerr) || wompi.IsOutcomeUnknown(gerr) {
			t.Fatalf("503 on GET: %v", gerr)
		}
		sim.UpdateFaults(func(f *wompitest.Faults) { f.ErrorRate = 0; f.TooManyRequestsRate = 1 })
		_, err = c.Banks(ctx)
		if we := mustErr(t, err); we.HTTPStatus != 429 || !we.Retryable() {
			t.Fatalf("429: %v", err)
		}
		sim.SetFaults(wompitest.Faults{})
		if _, err := c.CreatePayout(ctx, "flaky-key", batch("flaky", tx("flaky-1", "1234567890", 1000))); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if e, _ := sim.LedgerEntry("flaky-1"); e.Accepted != 1 {
			t.Fatalf("accepted %d times", e.Accepted)
		}
	})
	t.Run("timeout retryable", func(t *testing.T) {
		sim.SetFaults(wompitest.Faults{Latency: time.Minute})
		defer sim.SetFaults(wompitest.Faults{})
		short := sim.Client(&http.Client{Timeout: 50 * time.Millisecond})
		_, err := short.Limits(ctx)
		we := mustErr(t, err)
		if we.HTTPStatus != 0 || !we.Retryable() || !we.Timeout() {
			t.Fatalf("timeout: %+v", we)
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = c.CreatePayout(cctx, "slow-key", batch("slow", tx("slow-1", "1234567890", 1)))
		if !wompi.IsRetryable(err) || !wompi.IsOutcomeUnknown(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("context deadline: %v", err)
		}
		if strings.Contains(err.Error(), sim.URL()) {
			t.Fatalf("URL in error: %v", err)
		}
	})
	t.Run("lost answer: committed, then same key gives EXC_022", func(t *testing.T) {
		sim.SetFaults(wompitest.Faults{DropResponseRate: 1})
		fresh := sim.Client(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
		_, err := fresh.CreatePayout(ctx, "lost-key", batch("lost", tx("lost-1", "1234567890", 1000)))
		we := mustErr(t, err)
		if we.HTTPStatus != 0 || !we.Retryable() || !we.OutcomeUnknown {
			t.Fatalf("dropped answer: %+v", we)
		}
		if e, ok := sim.LedgerEntry("lost-1"); !ok || e.Accepted != 1 {
			t.Fatalf("the batch must be committed: %+v", e)
		}
		sim.SetFaults(wompitest.Faults{})
		_, err = fresh.CreatePayout(ctx, "lost-key", batch("lost", tx("lost-1", "1234567890", 1000)))
		if !wompi.IsCode(err, wompi.CodeIdempotencyReused) {
			t.Fatalf("retry: %v", err)
		}
		found, err := c.FindPayoutsByReference(ctx, "lost")
		if err != nil || len(found) != 1 {
			t.Fatalf("reconcile: %+v %v", found, err)
		}
	})
	t.Run("transport failure on GET", func(t *testing.T) {
		dead, _ := wompi.New(wompi.Config{BaseURL: "http://127.0.0.1:1/v1", APIKey: "k", PrincipalID: "p"})
		_, err := dead.Banks(ctx)
		if we := mustErr(t, err); !we.Retryable() || we.OutcomeUnknown {
			t.Fatalf("connection refused: %+v", we)
		}
	})
}

func TestClientFileUpload(t *testing.T) {
	sim, c, _ := newSim(t, wompitest.Config{})
	ctx := context.Background()
	rows := []wompi.WompiCSVRow{
		{LegalIDType: "CC", LegalID: "1000000001", BankCode: "1007", AccountType: "AHORROS", AccountNumber: "1234567890", Name: "Ana, 'la' Pérez", Email: "ana@example.co", Amount: 120_000, Reference: "f-1"},
		{LegalIDType: "NIT", LegalID: "900123456", BankCode: "1507", AccountType: "DEPOSITO_ELECTRONICO", AccountNumber: "3001234567", Name: "Tienda SAS", Email: "t@example.co", Amount: 80_000, Reference: "f-2"},
	}
	for _, gz := range []bool{false, true} {
		ref := fmt.Sprintf("file-gz-%v", gz)
		res, err := c.CreatePayoutFile(ctx, "key-"+ref, &wompi.CreatePayoutFileRequest{Reference: ref, AccountID: wompitest.AccountMain,
			PaymentType: wompi.PaymentTypeProviders, FileType: wompi.FileTypeWompi, FileName: "plantilla-wompi.csv",
			Content: wompi.EncodeWompiCSV(rows), Gzip: gz, TransactionStatus: "APPROVED"})
		if err != nil {
			t.Fatalf("gzip=%v: %v", gz, err)
		}
		got := collect(t, c.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}))
		if len(got) != 2 || got[0].PayeeInfo.Name != rows[0].Name || got[1].PayeeInfo.BankCode != "1507" || got[1].AmountInCents != 80_000 {
			t.Fatalf("gzip=%v: %+v", gz, got)
		}
	}
	if e, _ := sim.LedgerEntry("f-1"); e.Accepted != 2 {
		t.Fatalf("f-1 accepted %d times, want 2 (one per upload)", e.Accepted)
	}
	// Recurring fields travel as form fields.
	res, err := c.CreatePayoutFile(ctx, "key-rec", &wompi.CreatePayoutFileRequest{Reference: "rec", AccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypePayroll, FileType: wompi.FileTypeWompi, FileName: "p.csv", Content: wompi.EncodeWompiCSV(rows[:1]),
		DispersionDatetime: t0.Add(30 * time.Hour), Recurring: &wompi.Recurring{Interval: wompi.IntervalMonth, Months: 12, Description: "rent"}})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Payout(ctx, res.PayoutID); p.Recurring == nil || p.Recurring.Months != 12 || p.DispersionDatetime != "2026-03-11T16:00" {
		t.Fatalf("recurring file batch: %+v", p)
	}
	// The simulator checks the fields: a PAB file is refused, an unknown bank code too.
	_, err = c.CreatePayoutFile(ctx, "key-pab", &wompi.CreatePayoutFileRequest{Reference: "pab", AccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypePayroll, FileType: wompi.FileTypePAB, FileName: "x.txt", Content: []byte("x")})
	if we := mustErr(t, err); we.HTTPStatus != 400 {
		t.Fatalf("PAB: %v", err)
	}
	bad := rows[:1:1]
	bad[0].BankCode = "9999"
	_, err = c.CreatePayoutFile(ctx, "key-badbank", &wompi.CreatePayoutFileRequest{Reference: "bb", AccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypePayroll, FileType: wompi.FileTypeWompi, FileName: "x.csv", Content: wompi.EncodeWompiCSV(bad)})
	if we := mustErr(t, err); we.HTTPStatus != 400 || !strings.Contains(strings.Join(we.Messages, " "), "bankCode") {
		t.Fatalf("unknown bank code: %v", err)
	}
}

func TestClientReports(t *testing.T) {
	_, c, _ := newSim(t, wompitest.Config{})
	ctx := context.Background()
	if _, err := c.CreatePayout(ctx, "rk", batch("rep", tx("rep-1", "1234567890", 4321))); err != nil {
		t.Fatal(err)
	}
	reps := collect(t, c.Reports(ctx, wompi.ReportsFilter{Periodicity: wompi.PeriodicityDaily, ReportType: wompi.ReportTypeTransactions, Limit: 10}))
	if len(reps) != 25 || reps[0].ID == "" || reps[0].Status == "" || reps[0].QueryEndDate.IsZero() {
		t.Fatalf("reports: %d %+v", len(reps), reps[0])
	}
	u, err := c.ReportURL(ctx, reps[0].ID, wompi.ReportIntegrationPayouts)
	if err != nil || !strings.HasPrefix(u, "http") {
		t.Fatalf("presigned: %q %v", u, err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "id,payoutId,reference,status") {
		t.Fatalf("csv: %d %q", resp.StatusCode, body)
	}
	if _, err := c.ReportURL(ctx, "unknown", wompi.ReportIntegrationPayouts); !wompi.IsStatus(err, 404) {
		t.Fatalf("unknown report: %v", err)
	}
	for _, err := range c.Reports(ctx, wompi.ReportsFilter{Periodicity: "hourly", ReportType: "payouts"}) {
		if !wompi.IsStatus(err, 400) {
			t.Fatalf("bad periodicity: %v", err)
		}
	}
}

// Every endpoint must accept both the wrapped and the bare payload.
func TestClientAcceptsWrappedAndBare(t *testing.T) {
	payloads := map[string]string{
		"/v1/banks":                      `[{"id":"b1","name":"NEQUI","code":"1507"}]`,
		"/v1/accounts":                   `[{"id":"a1","balanceInCents":5,"number":"1","status":"ACTIVE","bank":{"code":"1007"}}]`,
		"/v1/limits":                     `{"numberOfTransactionsConsumed":3,"limits":{"dailyLimit":10,"dailyAvailable":7,"dailyConsumed":3}}`,
		"/v1/payouts":                    `{"page":1,"limit":10,"total":1,"pages":1,"records":[{"id":"p1","status":"PENDING","reference":"r"}]}`,
		"/v1/payouts/p1":                 `{"id":"p1","status":"TOTAL_PAYMENT","reference":"r","amountInCents":9}`,
		"/v1/payouts/p1/transactions":    `{"page":1,"limit":10,"total":1,"pages":1,"records":[{"id":"t1","status":"FAILED","reference":"x","failureReason":"D19: Insufficient funds"}]}`,
		"/v1/payouts/p1/transactions/t1": `{"id":"t1","status":"APPROVED","reference":"x"}`,
		"/v1/transactions/r":             `[{"id":"t1","status":"APPROVED","reference":"x"}]`,
		"/v1/reports/payouts":            `{"page":1,"limit":10,"total":1,"pages":1,"records":[{"_id":"e1","reportId":"r1","status":"COMPLETED"}]}`,
		"/v1/reports/presigned_url":      `{"url":"https://files.example/r.csv"}`,
		"/v1/health":                     `{"status":"PARTIAL_OUTAGE","services":[{"name":"notifications","healthy":false}]}`,
		"/v1/payouts/create":             `{"payoutId":"p9","transactions":1,"success":1,"failed":0}`,
		"/v1/accounts/balance-recharge":  `{"accountId":"a1","balanceInCents":100}`,
	}
	for _, wrapped := range []bool{false, true} {
		var mu sync.Mutex
		seen := map[string]bool{}
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(wompi.HeaderAPIKey) != "k" || r.Header.Get(wompi.HeaderPrincipalID) != "p" || r.Header.Get("User-Agent") == "" {
				w.WriteHeader(401)
				return
			}
			key := r.URL.Path
			if r.Method == http.MethodPost && key == "/v1/payouts" {
				key = "/v1/payouts/create"
			}
			mu.Lock()
			seen[key] = true
			mu.Unlock()
			p, ok := payloads[key]
			if !ok {
				w.WriteHeader(404)
				return
			}
			if wrapped {
				p = `{"status":"success","code":"OK","message":"ok","meta":{"trace_id":"tr"},"data":` + p + `}`
			}
			_, _ = io.WriteString(w, p)
		}))
		c, _ := wompi.New(wompi.Config{BaseURL: ts.URL + "/v1", APIKey: "k", PrincipalID: "p"})
		ctx := context.Background()
		b, err := c.Banks(ctx)
		check(t, wrapped, "banks", err, len(b) == 1 && b[0].Code == "1507")
		a, err := c.Accounts(ctx, wompi.AccountsFilter{})
		check(t, wrapped, "accounts", err, len(a) == 1 && a[0].BalanceInCents == 5)
		l, err := c.Limits(ctx)
		check(t, wrapped, "limits", err, l != nil && l.Limits.DailyAvailable == 7 && l.NumberOfTransactionsConsumed == 3)
		ps := collectErr(c.Payouts(ctx, wompi.PayoutsFilter{}))
		check(t, wrapped, "payouts", nil, len(ps) == 1 && ps[0].ID == "p1")
		p, err := c.Payout(ctx, "p1")
		check(t, wrapped, "payout", err, p != nil && p.Status == wompi.BatchTotalPayment)
		txs := collectErr(c.PayoutTransactions(ctx, "p1", wompi.TransactionsFilter{}))
		check(t, wrapped, "transactions", nil, len(txs) == 1 && txs[0].FailureReason.Code == "D19")
		tr, err := c.PayoutTransaction(ctx, "p1", "t1")
		check(t, wrapped, "transaction", err, tr != nil && tr.Status == wompi.TransactionApproved)
		br := collectErr(c.TransactionsByReference(ctx, "r", wompi.ReferenceFilter{}))
		check(t, wrapped, "by reference", nil, len(br) == 1)
		rp := collectErr(c.Reports(ctx, wompi.ReportsFilter{Periodicity: "daily", ReportType: "payouts"}))
		check(t, wrapped, "reports", nil, len(rp) == 1 && rp[0].ID == "e1")
		u, err := c.ReportURL(ctx, "e1", "payouts")
		check(t, wrapped, "presigned", err, u == "https://files.example/r.csv")
		h, err := c.Health(ctx)
		check(t, wrapped, "health", err, h != nil && h.Status == wompi.HealthPartialOutage)
		cr, err := c.CreatePayout(ctx, "k1", batch("r", tx("x", "1234567890", 1)))
		check(t, wrapped, "create", err, cr != nil && cr.PayoutID == "p9")
		rc, err := c.RechargeBalance(ctx, "a1", 100_000)
		check(t, wrapped, "recharge", err, rc != nil && rc.BalanceInCents == 100)
		ts.Close()
		if len(seen) != len(payloads) {
			t.Errorf("wrapped=%v: endpoints called %d of %d", wrapped, len(seen), len(payloads))
		}
	}
}

func check(t *testing.T, wrapped bool, what string, err error, ok bool) {
	t.Helper()
	if err != nil || !ok {
		t.Errorf("wrapped=%v %s: ok=%v err=%v", wrapped, what, ok, err)
	}
}

func collectErr[T any](seq func(func(T, error) bool)) []T {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// A validation 400 whose message is a single string, and an error body
// that is not JSON, still give a typed error.
func TestClientErrorShapes(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/banks":
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(map[string]any{"code": "EXC_001", "message": "one message", "meta": map[string]string{"trace_id": "t1"}})
		case "/v1/limits":
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		case "/v1/health":
			w.WriteHeader(503)
			_, _ = io.WriteString(w, `{"status":503,"code":"SERVICE_UNAVAILABLE","message":"down"}`)
		}
	}))
	defer ts.Close()
	c, _ := wompi.New(wompi.Config{BaseURL: ts.URL + "/v1", APIKey: "k", PrincipalID: "p"})
	_, err := c.Banks(context.Background())
	if we := mustErr(t, err); we.Code != "EXC_001" || len(we.Messages) != 1 || we.Messages[0] != "one message" || we.TraceID != "t1" {
		t.Fatalf("string message: %+v", we)
	}
	_, err = c.Limits(context.Background())
	if we := mustErr(t, err); we.HTTPStatus != 502 || !we.Retryable() || len(we.Messages) != 1 {
		t.Fatalf("html 502: %+v", we)
	}
	// A 503 /health without a health payload is an error.
	_, err = c.Health(context.Background())
	if we := mustErr(t, err); we.HTTPStatus != 503 || !we.Retryable() {
		t.Fatalf("503 health without payload: %v", err)
	}
}
