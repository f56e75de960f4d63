package wepayout

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Shapes of a fuzzed create body (FuzzCreateBodyMatchesMarshal's shape
// argument): which pointers are set.
const (
	shapePIX      = 1 << iota // PIX is set: the pix variant
	shapeMerchant             // MerchantID is set
)

// FuzzCreateBodyMatchesMarshal holds appendCreateBody to json.Marshal: for
// any field values (non-ASCII, invalid UTF-8, HTML characters, U+2028 and
// U+2029, control bytes, empty omitempty fields, any amount, any
// merchant_id text), pix or bank variant, whenever it accepts a body its
// bytes are json.Marshal's, after what was already in the buffer; when it
// declines, the buffer is unchanged. A body json.Marshal refuses must be
// declined.
func FuzzCreateBodyMatchesMarshal(f *testing.F) {
	type seed struct {
		shape                                                           uint8
		method, currency, country                                       string
		cents                                                           int64
		invoice, name, docType, docNumber, pixKey                       string
		bankCode, branch, branchDigit, account, accountDigit, accountTy string
		merchant, description, notificationURL                          string
	}
	for _, s := range []seed{
		// What NewCreatePaymentRequest builds: pix, then bank.
		{shapePIX | shapeMerchant, "PIX", "BRL", "BR", 5034, "req-1", "Maria Souza", "CPF", "00000000000", "maria@example.com",
			"", "", "", "", "", "", "1234", "test payout", "https://example.com/webhooks/wepayout?a=1&b=2"},
		{0, "PIX", "BRL", "BR", 29, "req-2", "Loja Exemplo Ltda", "CNPJ", "00000000000000", "",
			"001", "1234", "X", "12345678", "9", "savings", "", "", "https://example.com/hooks"},
		// Every string json.Marshal escapes: HTML, quotes, control bytes,
		// invalid UTF-8, U+2028 and U+2029.
		{shapePIX, "<", ">", "&", -1, "a\"b", "a\\b", "\x00\x1f", "\t\n\r", "\xff",
			"\xe2\x80", "\u2028", "\u2029", "\xed\xa0\x80", "Gómez Ñandú 日本\U0001F600", "\x7f", "", "<script>", "&amp;"},
		// Amount extremes; merchant_id json.Marshal writes as 0, as is,
		// or refuses.
		{shapeMerchant, "", "", "", math.MinInt64, "", "", "", "", "", "", "", "", "", "", "", "", "", ""},
		{shapeMerchant, "", "", "", math.MaxInt64, "", "", "", "", "", "", "", "", "", "", "", "0", "", ""},
		{shapeMerchant, "PIX", "BRL", "BR", 7, "i", "n", "t", "d", "", "", "", "", "", "", "", "0123", "", ""},
		{shapeMerchant, "PIX", "BRL", "BR", 7, "i", "n", "t", "d", "", "", "", "", "", "", "", "12a", "", ""},
		{shapeMerchant, "PIX", "BRL", "BR", 7, "i", "n", "t", "d", "", "", "", "", "", "", "", "-1.5e3", "", ""},
		{shapeMerchant, "PIX", "BRL", "BR", 7, "i", "n", "t", "d", "", "", "", "", "", "", "", "１２", "", ""},
		{shapePIX, "", "", "", 0, "", "", "", "", "", "", "", "", "", "", "", "", "", ""},
	} {
		f.Add(s.shape, s.method, s.currency, s.country, s.cents, s.invoice, s.name, s.docType, s.docNumber, s.pixKey,
			s.bankCode, s.branch, s.branchDigit, s.account, s.accountDigit, s.accountTy, s.merchant, s.description, s.notificationURL)
	}
	f.Fuzz(func(t *testing.T, shape uint8, method, currency, country string, cents int64,
		invoice, name, docType, docNumber, pixKey string,
		bankCode, branch, branchDigit, account, accountDigit, accountType string,
		merchant, description, notificationURL string) {
		r := &CreatePaymentRequest{PaymentMethod: method, Currency: currency, Country: country, Amount: Cents(cents),
			Invoice: invoice, Beneficiary: Beneficiary{Name: name, Document: Document{Type: docType, Number: docNumber}},
			BankCode: bankCode, BankBranch: branch, BankBranchDigit: branchDigit, Account: account,
			AccountDigit: accountDigit, AccountType: accountType, Description: description, NotificationURL: notificationURL}
		if shape&shapePIX != 0 {
			r.PIX = &PIX{Key: pixKey}
		}
		if shape&shapeMerchant != 0 {
			n := json.Number(merchant)
			r.MerchantID = &n
		}
		want, werr := json.Marshal(r)
		got, ok := appendCreateBody([]byte("x"), r)
		if !ok {
			if string(got) != "x" {
				t.Fatalf("declined, but wrote %q", got)
			}
			return
		}
		if werr != nil {
			t.Fatalf("wrote %q; json.Marshal refuses the body: %v", got[1:], werr)
		}
		if string(got) != "x"+string(want) {
			t.Fatalf("body differs\n ours %q\n json %q", got[1:], want)
		}
	})
}

// TestCreateBodyFastPath: the bodies NewCreatePaymentRequest builds for
// real requests take the hand-written path (else CreatePayment would pay
// json.Marshal again), with json.Marshal's bytes; the bodies it declines
// are the ones json.Marshal writes differently or refuses.
func TestCreateBodyFastPath(t *testing.T) {
	odd := bankRequest("req-<odd>", 1, "123")
	odd.Payee.Name = "Zé \"Loja\" & Filhos <ltda>\u2028"
	odd.Description = "pagamento\tmarço"
	for _, tc := range []struct {
		name string
		cfg  Config
		req  rail.PayoutRequest
	}{
		{"pix", Config{MerchantID: "1234", NotificationURL: "https://us.example/webhooks/wepayout"}, pixRequest("req-pix", 5034)},
		{"pix without merchant", Config{}, pixRequest("req-pix", 1)},
		{"bank", Config{MerchantID: "0", NotificationURL: "https://us.example/webhooks/wepayout"}, bankRequest("req-bank", 123456, "12345678")},
		{"bank, escaped strings", Config{MerchantID: "9"}, odd},
	} {
		tc.cfg.APIKey = "k"
		c, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		body, err := c.NewCreatePaymentRequest(tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendCreateBody(nil, body)
		if !ok || string(got) != string(want) {
			t.Errorf("%s: wrote %s, fast path %v; json.Marshal %s", tc.name, got, ok, want)
		}
	}
	declined := func(s string) *CreatePaymentRequest {
		n := json.Number(s)
		return &CreatePaymentRequest{MerchantID: &n}
	}
	for name, r := range map[string]*CreatePaymentRequest{
		"nil": nil, "empty merchant_id": declined(""), "leading zero": declined("0123"), "not digits": declined("12a"),
		"sign": declined("-1"), "fraction": declined("1.5"),
	} {
		if got, ok := appendCreateBody([]byte("x"), r); ok || string(got) != "x" {
			t.Errorf("%s: took the fast path: %q", name, got)
		}
	}
}

// TestCreatePaymentSendsTheBody: CreatePayment sends json.Marshal's bytes
// whichever path writes them, and a body json.Marshal refuses (a
// MerchantID Config takes but JSON does not: "0123") is Rejected before
// anything is sent.
func TestCreatePaymentSendsTheBody(t *testing.T) {
	var sent []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sent = append(sent, string(b))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":1,"invoice":"a","amount":"R$1.00","status":{"id":7,"name":"Awaiting"}}`)
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL, APIKey: "k", MerchantID: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := c.NewCreatePaymentRequest(pixRequest("a", 100))
	if err != nil {
		t.Fatal(err)
	}
	fraction := json.Number("12.5")
	slow := *fast
	slow.MerchantID = &fraction
	for _, body := range []*CreatePaymentRequest{fast, &slow} {
		want, _ := json.Marshal(body)
		sent = nil
		if _, err := c.CreatePayment(context.Background(), body); err != nil {
			t.Fatal(err)
		}
		if len(sent) != 1 || sent[0] != string(want) {
			t.Errorf("sent %q; json.Marshal %s", sent, want)
		}
	}

	c, err = New(Config{BaseURL: ts.URL, APIKey: "k", MerchantID: "0123"})
	if err != nil {
		t.Fatal(err)
	}
	sent = nil
	_, err = c.Create(context.Background(), pixRequest("b", 100))
	var re *rail.Error
	if !errors.As(err, &re) || re.Class != rail.Rejected || re.Code != CodeInvalidRequest || len(sent) != 0 {
		t.Fatalf("merchant_id 0123: %v (sent %q); want Rejected %s before sending", err, sent, CodeInvalidRequest)
	}
}

// TestCreateBodyKnowsEveryField: appendCreateBody writes exactly these
// members, in this order, and only Cents marshals itself. A field added to
// CreatePaymentRequest (or a nested type), or a MarshalJSON/MarshalText
// method added to a field's type, fails here until the writer and this
// list learn it: the fuzz target, which sets only the fields it knows,
// would miss an omitempty one.
func TestCreateBodyKnowsEveryField(t *testing.T) {
	want := []string{"payment_method", "currency", "country", "amount", "invoice",
		"beneficiary", "beneficiary.name", "beneficiary.document", "beneficiary.document.type", "beneficiary.document.number",
		"pix,omitempty", "pix,omitempty.pix_key", "bank_code,omitempty", "bank_branch,omitempty", "bank_branch_digit,omitempty",
		"account,omitempty", "account_digit,omitempty", "account_type,omitempty", "merchant_id,omitempty",
		"description,omitempty", "notification_url,omitempty"}
	marshalers := map[string]bool{}
	var got []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			fl := typ.Field(i)
			name := prefix + fl.Tag.Get("json")
			got = append(got, name)
			ft := fl.Type
			for _, m := range []reflect.Type{ft, reflect.PointerTo(ft)} {
				if m.Implements(reflect.TypeFor[json.Marshaler]()) || m.Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
					marshalers[name] = true
				}
			}
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(name+".", ft)
			}
		}
	}
	walk("", reflect.TypeFor[CreatePaymentRequest]())
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("CreatePaymentRequest's members are\n %v\nappendCreateBody writes\n %v", got, want)
	}
	if len(marshalers) != 1 || !marshalers["amount"] {
		t.Errorf("fields whose type marshals itself: %v; appendCreateBody knows only amount (Cents)", marshalers)
	}
}

// BenchmarkCreateBody compares the create body written by hand and by
// json.Marshal, for the pix body NewCreatePaymentRequest builds.
func BenchmarkCreateBody(b *testing.B) {
	c, err := New(Config{APIKey: "k", MerchantID: "1234", NotificationURL: "https://us.example/webhooks/wepayout"})
	if err != nil {
		b.Fatal(err)
	}
	body, err := c.NewCreatePaymentRequest(pixRequest("req-000001", 5034))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := appendCreateBody(make([]byte, 0, 512), body); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// pixRequest and bankRequest are copies of helpers_test.go's (package
// wepayout_test) for the internal tests; the documents are made-up ones
// with valid check digits.
func pixRequest(id string, cents int64) rail.PayoutRequest {
	return rail.PayoutRequest{ID: id, AmountInCents: cents, Currency: "BRL", Description: "test payout",
		Payee: rail.Payee{Name: "Maria Souza", LegalIDType: "CPF", LegalID: "52998224725", PixKey: "maria.souza00@example.com"}}
}

func bankRequest(id string, cents int64, account string) rail.PayoutRequest {
	return rail.PayoutRequest{ID: id, AmountInCents: cents, Currency: "BRL",
		Payee: rail.Payee{Name: "Loja Exemplo Ltda", LegalIDType: "CNPJ", LegalID: "11222333000181", BankCode: "001", Branch: "1234",
			AccountNumber: account, AccountDigit: "9", AccountType: "CORRIENTE"}}
}
