package wompi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func railItem(id, bankCode string) rail.BatchItem {
	return rail.BatchItem{ID: id, AmountInCents: 100_00, Payee: rail.Payee{Name: "Ana Pérez", Email: "ana@example.co",
		LegalIDType: "CC", LegalID: "1000000000", BankCode: bankCode, AccountType: "AHORROS", AccountNumber: "4000000015"}}
}

// TestRailResolvesBankCodes: a known code becomes its bankId; an
// explicit bankId wins over the code; an unknown code refuses the batch
// before any POST, naming the payee, and reads GET /banks again only once
// the table is a minute old.
func TestRailResolvesBankCodes(t *testing.T) {
	sim, _, _ := newSim(t, wompitest.Config{})
	ct := &testenv.CallCounter{}
	c, err := wompi.New(wompi.Config{BaseURL: sim.BaseURL(), APIKey: sim.Config().APIKey, PrincipalID: sim.Config().PrincipalID,
		HTTPClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	r := wompi.NewRail(c, wompi.RailConfig{Now: func() time.Time { return now }})
	ctx := context.Background()
	req := func(ref string, items ...rail.BatchItem) rail.BatchRequest {
		return rail.BatchRequest{Reference: ref, OriginAccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypePayroll, Items: items}
	}

	b, err := r.CreateBatch(ctx, "k1", req("b1", railItem("b1-r0", "1007"), railItem("b1-r1", "1551")))
	if err != nil {
		t.Fatal(err)
	}
	for p, err := range r.Items(ctx, b.ProviderID) {
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != payout.StatusPending {
			t.Fatalf("item %+v", p)
		}
	}
	explicit := railItem("b2-r0", "0000")
	explicit.ProviderBankID = wompitest.BankID("1007")
	if _, err := r.CreateBatch(ctx, "k2", req("b2", explicit)); err != nil {
		t.Fatalf("an explicit bankId must win over an unknown code: %v", err)
	}
	if n := ct.Count("GET /v1/banks"); n != 1 {
		t.Fatalf("GET /banks read %d times, want once (cached)", n)
	}

	posts := ct.Count("POST /v1/payouts")
	_, err = r.CreateBatch(ctx, "k3", req("b3", railItem("b3-r0", "1007"), railItem("b3-r1", "0000")))
	var re *rail.Error
	if !errors.As(err, &re) || re.Class != rail.Rejected || re.Code != string(payout.ReasonUnknownBankID) ||
		len(re.Items) != 1 || re.Items[0] != "b3-r1" {
		t.Fatalf("unknown bank code: %v (%+v), want Rejected UNKNOWN_BANK_ID naming b3-r1", err, re)
	}
	if ct.Count("POST /v1/payouts") != posts {
		t.Fatal("a batch with an unknown bank code was POSTed")
	}
	if n := ct.Count("GET /v1/banks"); n != 1 {
		t.Fatalf("an unknown code re-read a fresh table: %d reads", n)
	}
	now = now.Add(2 * time.Minute)
	if _, err := r.CreateBatch(ctx, "k4", req("b4", railItem("b4-r0", "0000"))); rail.ClassOf(err) != rail.Rejected {
		t.Fatalf("unknown bank code: %v", err)
	}
	if n := ct.Count("GET /v1/banks"); n != 2 {
		t.Fatalf("an unknown code with a table two minutes old: %d reads of GET /banks, want 2", n)
	}
	now = now.Add(2 * time.Hour)
	if _, err := r.CreateBatch(ctx, "k5", req("b5", railItem("b5-r0", "1007"))); err != nil {
		t.Fatal(err)
	}
	if n := ct.Count("GET /v1/banks"); n != 3 {
		t.Fatalf("a table past its TTL: %d reads of GET /banks, want 3", n)
	}
}

// TestRailCreateWithoutPayoutID: a 201 that names no payoutId leaves the
// batch's existence unknown.
func TestRailCreateWithoutPayoutID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"status":201,"data":{"transactions":1}}`))
			return
		}
		_, _ = w.Write([]byte(`[{"id":"bank-1007","code":"1007","name":"BANCOLOMBIA"}]`))
	}))
	defer srv.Close()
	c, err := wompi.New(wompi.Config{BaseURL: srv.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wompi.NewRail(c, wompi.RailConfig{}).CreateBatch(context.Background(), "k1",
		rail.BatchRequest{Reference: "b1", OriginAccountID: "a", PaymentType: wompi.PaymentTypeOther, Items: []rail.BatchItem{railItem("b1-r0", "1007")}})
	if rail.ClassOf(err) != rail.OutcomeUnknown {
		t.Fatalf("201 without payoutId: %v (class %s), want outcome_unknown", err, rail.ClassOf(err))
	}
}

// TestRailErrorsMaskProviderEcho: a POST /payouts refusal whose messages
// quote the payee's account number, legal id and email (a validation 400,
// JSON or plain text) carries none of them in any error text: not in the
// rail error's Message, and not in its Error(), which prints the wrapped
// *wompi.Error too (the text every log line with "err" shows). The
// refused item is still named by its index.
func TestRailErrorsMaskProviderEcho(t *testing.T) {
	const (
		account = "4000000015"
		legalID = "1000000000"
		email   = "ana@example.co"
	)
	bodies := []struct{ name, ctype, body string }{
		{"json", "application/json", `{"status":400,"code":"VALIDATION_ERROR","message":["transactions[0].accountNumber ` + account +
			` does not match legalId ` + legalID + ` (` + email + `)"],"meta":{"trace_id":"t1"}}`},
		{"huge", "application/json", `{"status":400,"code":"` + strings.Repeat("E", 64<<10) + `","message":["transactions[0].accountNumber ` +
			account + ` ` + strings.Repeat("x", 64<<10) + `"],"meta":{"trace_id":"` + strings.Repeat("t", 64<<10) + `"}}`},
		{"text", "text/plain", `transactions[0].accountNumber ` + account + ` does not match legalId ` + legalID + ` (` + email + `)`},
	}
	for _, b := range bodies {
		t.Run(b.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					w.Header().Set("Content-Type", b.ctype)
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(b.body))
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`[{"id":"bank-1007","code":"1007","name":"BANCOLOMBIA"}]`))
			}))
			defer srv.Close()
			c, err := wompi.New(wompi.Config{BaseURL: srv.URL, APIKey: "k", PrincipalID: "p"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = wompi.NewRail(c, wompi.RailConfig{}).CreateBatch(context.Background(), "k1",
				rail.BatchRequest{Reference: "b1", OriginAccountID: "a", PaymentType: wompi.PaymentTypeOther, Items: []rail.BatchItem{railItem("b1-r0", "1007")}})
			var re *rail.Error
			if !errors.As(err, &re) || re.Class != rail.Rejected {
				t.Fatalf("refusal: %v, want a Rejected *rail.Error", err)
			}
			we, _ := wompi.AsError(err)
			for _, text := range []string{err.Error(), re.Message, we.Error(), strings.Join(we.Messages, "; ")} {
				for _, pii := range []string{account, legalID, email} {
					if strings.Contains(text, pii) {
						t.Errorf("%q carries %q", text, pii)
					}
				}
			}
			if b.name != "text" && (len(re.Items) != 1 || re.Items[0] != "b1-r0") {
				t.Errorf("items %v, want the refused payee b1-r0", re.Items)
			}
			// The code becomes the REJECTED events' reasonCode, the message
			// their reasonMessage: a few hundred bytes at most, else an
			// event past the status topic's max.message.bytes.
			if len(re.Code) > 64 || len(re.Message) > 500 || len(err.Error()) > 2000 {
				t.Errorf("code of %d bytes, message of %d, error text of %d", len(re.Code), len(re.Message), len(err.Error()))
			}
		})
	}
}

// TestRailMasksProviderWordsOnStatuses: the words Wompi puts on a
// transaction's failure (a bank's message) and on a batch's status are
// carried into status events (reasonMessage, statusMessage): anything in
// them that looks like the payee's account number, legal id or email is
// masked there as in a refusal's message, and the bank's code stays.
func TestRailMasksProviderWordsOnStatuses(t *testing.T) {
	const (
		account = "4000000015"
		email   = "ana@example.co"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/payouts/p1":
			_, _ = w.Write([]byte(`{"data":{"id":"p1","status":"REJECTED","reference":"b1","amountInCents":10000,"totalTransactions":1,` +
				`"statusMessage":"account ` + account + ` of ` + email + ` is closed"}}`))
		case "/payouts/p1/transactions/t1":
			_, _ = w.Write([]byte(`{"data":{"id":"t1","status":"FAILED","reference":"r1","amountInCents":10000,` +
				`"failureReason":"D07: Account number ` + account + ` does not exist (` + email + `)"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := wompi.New(wompi.Config{BaseURL: srv.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	r := wompi.NewRail(c, wompi.RailConfig{})
	ctx := context.Background()
	b, err := r.GetBatch(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	it, err := r.Item(ctx, "p1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if it.Reason != "D07" || !strings.Contains(it.ReasonMessage, "does not exist") || !strings.Contains(b.StatusMessage, "is closed") {
		t.Fatalf("reason %q %q, status message %q: the provider's words must stay, masked", it.Reason, it.ReasonMessage, b.StatusMessage)
	}
	for _, text := range []string{it.ReasonMessage, b.StatusMessage} {
		for _, pii := range []string{account, email} {
			if strings.Contains(text, pii) {
				t.Errorf("%q carries %q", text, pii)
			}
		}
	}
}
