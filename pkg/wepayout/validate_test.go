package wepayout

import (
	"slices"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

func TestValidCPFAndCNPJ(t *testing.T) {
	for _, tc := range []struct {
		s         string
		cpf, cnpj bool
	}{
		{"52998224725", true, false}, {"11144477735", true, false}, {"12345678909", true, false},
		{"52998224724", false, false}, {"52998224715", false, false}, // one check digit wrong
		{"11111111111", false, false}, {"00000000000", false, false}, // equal digits
		{"5299822472", false, false}, {"529982247250", false, false}, {"529.982.247-25", false, false},
		{"11222333000181", false, true}, {"11444777000161", false, true},
		{"11222333000180", false, false}, {"11222333000191", false, false}, {"00000000000000", false, false},
		{"11.222.333/0001-81", false, false}, {"", false, false}, {"1122233300018a", false, false},
	} {
		if ValidCPF(tc.s) != tc.cpf || ValidCNPJ(tc.s) != tc.cnpj {
			t.Errorf("%q: CPF %v CNPJ %v, want %v %v", tc.s, ValidCPF(tc.s), ValidCNPJ(tc.s), tc.cpf, tc.cnpj)
		}
	}
}

func TestValidPixKey(t *testing.T) {
	for k, want := range map[string]bool{
		"52998224725": true, "11222333000181": true, "52998224724": false,
		"+5511987654321": true, "+551187654321": true, "+5511": false, "+14155550100": false, "5511987654321": false,
		"ana@example.com": true, "ana@example": false, "@example.com": false, "a@b@c.com": false, "ana @example.com": false,
		"123e4567-e89b-12d3-a456-426614174000": true, "123e4567e89b12d3a456426614174000": false, "123e4567-e89b-12d3-a456-42661417400g": false,
		"": false, strings.Repeat("a", 70) + "@ex.com": true, strings.Repeat("a", 71) + "@ex.com": false,
	} {
		if ValidPixKey(k) != want {
			t.Errorf("ValidPixKey(%q) = %v", k, !want)
		}
	}
}

func TestValidate(t *testing.T) {
	pix := rail.Payee{Name: "Maria Souza", LegalIDType: "CPF", LegalID: "52998224725", PixKey: "ana@example.com", AccountType: "AHORROS"}
	bank := rail.Payee{Name: "Loja Ltda", LegalIDType: "CNPJ", LegalID: "11222333000181", BankCode: "001", Branch: "1234",
		AccountNumber: "12345678", AccountDigit: "9", AccountType: "CORRIENTE"}
	for _, tc := range []struct {
		name     string
		currency string
		base     rail.Payee
		mut      func(*rail.Payee)
		want     []payout.Reason
	}{
		{"valid pix", "BRL", pix, func(*rail.Payee) {}, nil},
		{"valid bank", "BRL", bank, func(*rail.Payee) {}, nil},
		{"bank, savings, digit X, branch digit", "BRL", bank, func(p *rail.Payee) { p.AccountType, p.AccountDigit, p.BranchDigit = "AHORROS", "X", "0" }, nil},
		{"COP", "COP", pix, func(*rail.Payee) {}, []payout.Reason{ReasonInvalidCurrency}},
		{"no currency", "", pix, func(*rail.Payee) {}, []payout.Reason{ReasonInvalidCurrency}},
		{"CC legal id type", "BRL", pix, func(p *rail.Payee) { p.LegalIDType = "CC" }, []payout.Reason{ReasonInvalidLegalIDType}},
		{"bad CPF", "BRL", pix, func(p *rail.Payee) { p.LegalID = "52998224724" }, []payout.Reason{ReasonInvalidCPF}},
		{"CPF with punctuation", "BRL", pix, func(p *rail.Payee) { p.LegalID = "529.982.247-25" }, []payout.Reason{ReasonInvalidCPF}},
		{"CNPJ typed CPF", "BRL", pix, func(p *rail.Payee) { p.LegalID = "11222333000181" }, []payout.Reason{ReasonInvalidCPF}},
		{"bad CNPJ", "BRL", bank, func(p *rail.Payee) { p.LegalID = "11222333000180" }, []payout.Reason{ReasonInvalidCNPJ}},
		{"empty name", "BRL", pix, func(p *rail.Payee) { p.Name = "  " }, []payout.Reason{ReasonInvalidName}},
		{"101-char name", "BRL", pix, func(p *rail.Payee) { p.Name = strings.Repeat("é", 101) }, []payout.Reason{ReasonInvalidName}},
		{"100-char name", "BRL", pix, func(p *rail.Payee) { p.Name = strings.Repeat("é", 100) }, nil},
		{"neither", "BRL", pix, func(p *rail.Payee) { p.PixKey = "" }, []payout.Reason{ReasonMissingPixOrBank}},
		{"both", "BRL", bank, func(p *rail.Payee) { p.PixKey = "ana@example.com" }, []payout.Reason{ReasonPixAndBank}},
		{"bad pix key", "BRL", pix, func(p *rail.Payee) { p.PixKey = "11987654321" }, []payout.Reason{ReasonInvalidPixKey}},
		{"4-digit bank code", "BRL", bank, func(p *rail.Payee) { p.BankCode = "1007" }, []payout.Reason{ReasonInvalidBankCode}},
		{"no branch", "BRL", bank, func(p *rail.Payee) { p.Branch = "" }, []payout.Reason{ReasonInvalidBranch}},
		{"bad branch digit", "BRL", bank, func(p *rail.Payee) { p.BranchDigit = "12" }, []payout.Reason{ReasonInvalidBranchDigit}},
		{"no account", "BRL", bank, func(p *rail.Payee) { p.AccountNumber = "" }, []payout.Reason{ReasonInvalidAccountNumber}},
		{"account with dash", "BRL", bank, func(p *rail.Payee) { p.AccountNumber = "1234-5" }, []payout.Reason{ReasonInvalidAccountNumber}},
		{"no account digit", "BRL", bank, func(p *rail.Payee) { p.AccountDigit = "" }, []payout.Reason{ReasonInvalidAccountDigit}},
		{"electronic deposit", "BRL", bank, func(p *rail.Payee) { p.AccountType = "DEPOSITO_ELECTRONICO" }, []payout.Reason{ReasonInvalidAccountType}},
		{"everything wrong", "USD", bank, func(p *rail.Payee) { p.LegalIDType, p.Name, p.BankCode = "NIT", "", "1" },
			[]payout.Reason{ReasonInvalidCurrency, ReasonInvalidLegalIDType, ReasonInvalidName, ReasonInvalidBankCode}},
	} {
		p := tc.base
		tc.mut(&p)
		vs := Validate(tc.currency, 100, p)
		var got []payout.Reason
		for _, v := range vs {
			got = append(got, v.Reason)
			for _, pii := range []string{p.LegalID, p.PixKey, p.AccountNumber} {
				if len(pii) > 3 && strings.Contains(v.Message, pii) {
					t.Errorf("%s: message %q echoes personal data", tc.name, v.Message)
				}
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	r := rail.PayoutRequest{ID: "", AmountInCents: 0, Currency: "BRL", Payee: pix}
	vs := ValidateRequest(r)
	if len(vs) != 2 || vs[0].Reason != payout.ReasonInvalidRequestID || vs[1].Reason != ReasonInvalidAmount {
		t.Errorf("ValidateRequest: %v", vs)
	}
}

// WEpayout publishes no maximum; ours (MaxAmountInCents) keeps a batch's
// total far from int64's limit and the amount within the simulator's
// twelve digits of reais.
func TestValidateAmountMaximum(t *testing.T) {
	p := rail.Payee{LegalIDType: DocumentCPF, LegalID: "52998224725", Name: "Maria Souza", PixKey: "maria@example.com"}
	if vs := Validate(CurrencyBRL, MaxAmountInCents, p); len(vs) != 0 {
		t.Fatalf("the maximum itself: %v", vs)
	}
	vs := Validate(CurrencyBRL, MaxAmountInCents+1, p)
	if len(vs) != 1 || vs[0].Reason != ReasonInvalidAmount {
		t.Fatalf("one cent above the maximum: %v, want INVALID_AMOUNT", vs)
	}
}
