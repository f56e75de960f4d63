package wompi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// payeeOf is a transaction whose payee fields are set from f (legalId,
// accountNumber, name, email, phone), the others valid.
func payeeOf(f map[string]string) TransactionRequest {
	t := TransactionRequest{LegalIDType: "CC", LegalID: "1000000000", BankID: "b", AccountType: "AHORROS",
		AccountNumber: "4000000015", Name: "Ana Pérez", Email: "ana@example.co", Amount: 100_00, Reference: "r0"}
	for k, v := range f {
		switch k {
		case "legalId":
			t.LegalID = v
		case "accountNumber":
			t.AccountNumber = v
		case "name":
			t.Name = v
		case "email":
			t.Email = v
		case "phone":
			t.Phone = v
		default:
			panic(k)
		}
	}
	return t
}

// TestErrorMasksSentPayeeValues: a validation 400 to POST /payouts that
// quotes back what we sent of a payee which maskText cannot tell from
// other words (a CE or a passport with letters, a short account number, a
// name, a phone in groups, an email with characters its pattern stops at)
// carries none of it in any text of the error: its Messages, its Code, its
// Error() and maskedMessage (a REJECTED event's reasonMessage). The
// transaction's index stays, even where a value reads the same, and
// rejectedItems still maps the refusal to its item.
func TestErrorMasksSentPayeeValues(t *testing.T) {
	cases := []struct {
		name   string
		payee  map[string]string
		msg    string
		want   string   // the message once masked
		hidden []string // what no text of the error may carry
	}{
		{"CE with letters", map[string]string{"legalId": "AB12345"},
			"transactions[3].legalId AB12345 no existe en el registro",
			"transactions[3].legalId **** no existe en el registro", []string{"AB12345", "AB"}},
		{"CE quoted in lower case", map[string]string{"legalId": "AB12345"},
			"transactions[3].legalId 'ab12345' no coincide",
			"transactions[3].legalId '****' no coincide", []string{"ab12345", "ab"}},
		{"PP", map[string]string{"legalId": "X1234"},
			"transactions[3].legalId X1234 is not a valid passport",
			"transactions[3].legalId **** is not a valid passport", []string{"X1234"}},
		{"4-digit account", map[string]string{"accountNumber": "4821"},
			"transactions[3].accountNumber 4821 must be 6-20 digits",
			"transactions[3].accountNumber **** must be 6-20 digits", []string{"4821"}},
		{"email with an apostrophe and a plus", map[string]string{"email": "o'brien+pagos@correo.com.co"},
			"transactions[3].email o'brien+pagos@correo.com.co is not valid",
			"transactions[3].email ***@*** is not valid", []string{"brien", "o'"}},
		{"email with accents and parentheses", map[string]string{"email": "josé(pagos)@correo.co"},
			`transactions[3].email "josé(pagos)@correo.co" is not valid`,
			`transactions[3].email "***@***" is not valid`, []string{"josé", "pagos"}},
		{"name in upper case", map[string]string{"name": "María José Pérez"},
			"transactions[3].name MARÍA JOSÉ PÉREZ has invalid characters",
			"transactions[3].name **** has invalid characters", []string{"MARÍA", "PÉREZ"}},
		{"phone in groups", map[string]string{"phone": "+57 300 123 4567"},
			"transactions[3].phone +57 300 123 4567 is not a mobile number",
			"transactions[3].phone +**** is not a mobile number", []string{"300 123", "4567"}},
		{"a value that reads as the index", map[string]string{"accountNumber": "3333"},
			"transactions[3].accountNumber 3333 must be 6-20 digits",
			"transactions[3].accountNumber **** must be 6-20 digits", []string{"3333"}},
		{"whole tokens only", map[string]string{"name": "Ana"},
			"transactions[3].name Ana is not the holder Anabel of the account",
			"transactions[3].name **** is not the holder Anabel of the account", []string{" Ana "}},
		// minSentValue: a value of two characters is an ordinary word more
		// often than a payee's data (Validate takes no legal id that short).
		{"too short to mask", map[string]string{"legalId": "A1"},
			"transactions[3].legalId A1 is too short",
			"transactions[3].legalId A1 is too short", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &CreatePayoutRequest{Transactions: make([]TransactionRequest, 4)}
			for i := range req.Transactions {
				req.Transactions[i] = payeeOf(nil)
			}
			req.Transactions[3] = payeeOf(tc.payee)
			body := fmt.Sprintf(`{"status":400,"code":"VALIDATION_ERROR","message":[%q]}`, tc.msg)
			e := httpError(call{method: http.MethodPost, path: "/payouts", sent: req.payeeValues}, 400, []byte(body))
			if len(e.Messages) != 1 || e.Messages[0] != tc.want {
				t.Fatalf("messages %q, want [%q]", e.Messages, tc.want)
			}
			for _, text := range []string{e.Error(), maskedMessage(e), e.Code} {
				for _, h := range tc.hidden {
					if strings.Contains(text, h) {
						t.Errorf("%q carries %q", text, h)
					}
				}
			}
			items := []rail.BatchItem{{ID: "i0"}, {ID: "i1"}, {ID: "i2"}, {ID: "i3"}}
			if got := rejectedItems(e.Messages, items); len(got) != 1 || got[0] != "i3" {
				t.Errorf("rejected items %v, want [i3]", got)
			}
		})
	}
}

// TestErrorMasksSentValuesInCodeAndText: the code and a plain-text answer
// are masked as the messages are.
func TestErrorMasksSentValuesInCodeAndText(t *testing.T) {
	req := &CreatePayoutRequest{Transactions: []TransactionRequest{payeeOf(map[string]string{"legalId": "X1234"})}}
	cl := call{method: http.MethodPost, path: "/payouts", sent: req.payeeValues}
	for code, want := range map[string]string{
		"X1234":     "****",
		"BAD_X1234": "BAD_****", // '_' separates words
		"EX1234":    "EX1234",   // one token, not the value
	} {
		e := httpError(cl, 400, []byte(`{"code":"`+code+`","message":"legalId X1234"}`))
		if e.Code != want || e.Messages[0] != "legalId ****" {
			t.Errorf("code %q: %q, messages %q; want %q", code, e.Code, e.Messages, want)
		}
	}
	e := httpError(cl, 400, []byte(`transactions[0].legalId X1234 is not valid`))
	if strings.Contains(e.Error(), "X1234") {
		t.Errorf("plain text answer: %v", e)
	}
}

// TestErrorMasksSentValuesOfABigBatch: in a batch of 10,000 transactions
// every payee's values are masked, each in its own message, and every
// message still names its transaction.
func TestErrorMasksSentValuesOfABigBatch(t *testing.T) {
	const n = 10_000
	req := &CreatePayoutRequest{Transactions: make([]TransactionRequest, n)}
	msgs := make([]string, n)
	items := make([]rail.BatchItem, n)
	for i := range n {
		ce := fmt.Sprintf("CE%dZ", i)
		req.Transactions[i] = payeeOf(map[string]string{"legalId": ce, "name": fmt.Sprintf("Ana %d", i)})
		msgs[i] = fmt.Sprintf("transactions[%d].legalId %s does not match name Ana %d", i, ce, i)
		items[i] = rail.BatchItem{ID: fmt.Sprint("i", i)}
	}
	body := fmt.Sprintf(`{"code":"VALIDATION_ERROR","message":%s}`, jsonStrings(msgs))
	e := httpError(call{method: http.MethodPost, path: "/payouts", sent: req.payeeValues}, 400, []byte(body))
	for i, m := range e.Messages {
		if want := fmt.Sprintf("transactions[%d].legalId **** does not match name ****", i); m != want {
			t.Fatalf("message %d: %q, want %q", i, m, want)
		}
	}
	if got := rejectedItems(e.Messages, items); len(got) != n {
		t.Errorf("%d rejected items, want %d", len(got), n)
	}
}

func jsonStrings(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", s)
	}
	b.WriteByte(']')
	return b.String()
}

// TestSentValuesOnlyOnErrorAnswers: the values a call sent are listed only
// when its answer is an error; an accepted batch does not pay for them.
func TestSentValuesOnlyOnErrorAnswers(t *testing.T) {
	status := http.StatusCreated
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"data":{"payoutId":"p1"},"message":"legalId X1234"}`))
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	cl := call{method: http.MethodPost, path: "/payouts", body: []byte(`{}`), contentType: "application/json",
		sent: func() []string { listed++; return []string{"X1234"} }}
	if _, _, err := c.do(context.Background(), cl); err != nil || listed != 0 {
		t.Fatalf("201: err %v, values listed %d times, want 0", err, listed)
	}
	status = http.StatusBadRequest
	_, _, err = c.do(context.Background(), cl)
	if we, ok := AsError(err); !ok || listed != 1 || we.Messages[0] != "legalId ****" {
		t.Fatalf("400: %v, values listed %d times, want 1", err, listed)
	}
}

// TestSentValuesOfFileAndFilter: an error answer to POST /payouts/file in
// our WOMPI layout, and to a transactions listing filtered by the payee's
// account number and name, masks those values too.
func TestSentValuesOfFileAndFilter(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		if r.Method == http.MethodPost {
			_, _ = w.Write([]byte(`{"code":"VALIDATION_ERROR","message":["line 2: legalId AB12345 of Ana Pérez"]}`))
			return
		}
		_, _ = w.Write([]byte(`{"code":"VALIDATION_ERROR","message":"no account 4821 for Ana Pérez"}`))
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	csv := EncodeWompiCSV([]WompiCSVRow{{LegalIDType: "CE", LegalID: "AB12345", BankCode: "1007", AccountType: "AHORROS",
		AccountNumber: "4000000015", Name: "Ana Pérez", Email: "ana@example.co", Amount: 100_00, Reference: "r0"}})
	_, err = c.CreatePayoutFile(ctx, "k1", &CreatePayoutFileRequest{Reference: "b1", AccountID: "a", FileType: FileTypeWompi,
		FileName: "b1.csv", Content: csv})
	if we, ok := AsError(err); !ok || we.Messages[0] != "line 2: legalId **** of ****" {
		t.Errorf("file: %v", err)
	}
	for _, err := range c.PayoutTransactions(ctx, "p1", TransactionsFilter{AccountNumber: "4821", PayeeName: "Ana Pérez"}) {
		if we, ok := AsError(err); !ok || we.Messages[0] != "no account **** for ****" {
			t.Errorf("listing: %v", err)
		}
	}
}

// TestRailRejectionMasksSentPayeeValues: through CreateBatch, a 400 to
// POST /payouts quoting two payees' CE, passport, short account number and
// email gives a Rejected error whose Message (the REJECTED events'
// reasonMessage) and Error() carry none of them, and whose Items name both
// payees.
func TestRailRejectionMasksSentPayeeValues(t *testing.T) {
	msgs := []string{
		"transactions[0].legalId AB12345 does not match accountNumber 4821",
		"transactions[1].legalId X1234 (PP) does not match email o'brien+pagos@correo.com.co",
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprintf(w, `{"status":400,"code":"VALIDATION_ERROR","message":%s}`, jsonStrings(msgs))
			return
		}
		_, _ = w.Write([]byte(`[{"id":"bank-1007","code":"1007","name":"BANCOLOMBIA"}]`))
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	items := []rail.BatchItem{
		{ID: "r0", AmountInCents: 100_00, Payee: rail.Payee{Name: "Ana Pérez", Email: "ana@example.co", LegalIDType: "CE",
			LegalID: "AB12345", BankCode: "1007", AccountType: "AHORROS", AccountNumber: "4821"}},
		{ID: "r1", AmountInCents: 100_00, Payee: rail.Payee{Name: "Liam O'Brien", Email: "o'brien+pagos@correo.com.co", LegalIDType: "PP",
			LegalID: "X1234", BankCode: "1007", AccountType: "AHORROS", AccountNumber: "4000000015"}},
	}
	_, err = NewRail(c, RailConfig{}).CreateBatch(context.Background(), "k1",
		rail.BatchRequest{Reference: "b1", OriginAccountID: "a", PaymentType: PaymentTypeOther, Items: items})
	re, ok := err.(*rail.Error)
	if !ok || re.Class != rail.Rejected {
		t.Fatalf("%v, want a Rejected *rail.Error", err)
	}
	const want = "transactions[0].legalId **** does not match accountNumber ****; " +
		"transactions[1].legalId **** (PP) does not match email ***@***"
	if re.Message != want {
		t.Errorf("message %q, want %q", re.Message, want)
	}
	for _, v := range []string{"AB12345", "X1234", "4821", "brien"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("%q carries %q", err.Error(), v)
		}
	}
	if fmt.Sprint(re.Items) != "[r0 r1]" {
		t.Errorf("items %v, want [r0 r1]", re.Items)
	}
}
