package wompitest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// The differential test of issue 17: whatever wompi.Validate (our ingest)
// accepts, the simulator's POST /payouts validation accepts too, so a bad
// payee is refused at ingest, per payee, and never turns a whole batch
// REJECTED at the POST.

var diffNow = time.Date(2026, 3, 10, 10, 0, 0, 0, rail.Location(rail.Wompi))

func diffRequest() payout.Request {
	return payout.Request{RequestID: "req-1", OriginAccountID: wompitest.AccountMain, PaymentType: payout.PaymentProviders,
		Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalCC, LegalID: "1000000000", Name: "María Pérez",
			Email: "maria@example.co", BankCode: "1007", AccountType: payout.AccountAhorros, AccountNumber: "12345678901"},
		AmountInCents: 1_000_000, Currency: wompi.Currency, RequestedAt: diffNow}
}

// wireTx maps a request the way the dispatcher does (pkg/dispatch
// job.request): the bank code becomes the simulator's bankId.
func wireTx(r *payout.Request) wompi.TransactionRequest {
	b := r.Beneficiary
	bankID := wompitest.BankID(b.BankCode)
	if b.BankID != nil {
		bankID = *b.BankID
	}
	return wompi.TransactionRequest{LegalIDType: string(b.LegalIDType), LegalID: b.LegalID, BankID: bankID,
		AccountType: string(b.AccountType), AccountNumber: b.AccountNumber, Name: b.Name, Email: b.Email,
		Amount: r.AmountInCents, Reference: r.RequestID}
}

// checkAgreement fails when wompi.Validate accepts r and the simulator's
// validator refuses it.
func checkAgreement(t *testing.T, r *payout.Request) (accepted bool) {
	t.Helper()
	if vs := wompi.Validate(r, diffNow); vs != nil {
		return false
	}
	if msgs := wompitest.ValidateTransaction(wireTx(r)); msgs != nil {
		t.Errorf("wompi.Validate accepts %+v but the simulator refuses it: %v", r.Beneficiary, msgs)
	}
	return true
}

var diffEdges = []struct {
	name   string
	mutate func(r *payout.Request)
}{
	{"valid", func(r *payout.Request) {}},
	{"NIT with check digit", func(r *payout.Request) {
		r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalNIT, "900123456-7"
	}},
	{"NIT plain", func(r *payout.Request) {
		r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalNIT, "900123456"
	}},
	{"NIT with dots", func(r *payout.Request) {
		r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalNIT, "900.123.456"
	}},
	{"CE alphanumeric", func(r *payout.Request) { r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalCE, "E12345" }},
	{"PP 20 chars", func(r *payout.Request) {
		r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalPP, strings.Repeat("A", 20)
	}},
	{"PP 21 chars", func(r *payout.Request) {
		r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalPP, strings.Repeat("A", 21)
	}},
	{"DNI with space", func(r *payout.Request) { r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalDNI, "AB 1234" }},
	{"long accented name (100 runes)", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("á", 100) }},
	{"accented name of 51 runes", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("ñ", 51) }},
	{"accented name of 50 runes", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("ñ", 50) }},
	{"100 ascii letters", func(r *payout.Request) { r.Beneficiary.Name = strings.Repeat("a", 100) }},
	{"name with emoji", func(r *payout.Request) { r.Beneficiary.Name = "Ana 😀" }},
	{"name with tab", func(r *payout.Request) { r.Beneficiary.Name = "Ana\tPérez" }},
	{"name with leading space", func(r *payout.Request) { r.Beneficiary.Name = " Ana" }},
	{"name with symbols", func(r *payout.Request) { r.Beneficiary.Name = "Ana <script>" }},
	{"company name", func(r *payout.Request) { r.Beneficiary.Name = "Inversiones López & Cía. S.A.S. (Bogotá)" }},
	{"name with apostrophe", func(r *payout.Request) { r.Beneficiary.Name = "D'Artagnan O'Neil" }},
	{"name with NBSP", func(r *payout.Request) { r.Beneficiary.Name = "Ana\u00a0Pérez" }},
	{"name combining accent", func(r *payout.Request) { r.Beneficiary.Name = "Jose\u0301" }},
	{"email plus", func(r *payout.Request) { r.Beneficiary.Email = "ana+pagos@example.co" }},
	{"email unicode", func(r *payout.Request) { r.Beneficiary.Email = "añа@example.co" }},
	{"email quoted", func(r *payout.Request) { r.Beneficiary.Email = `"ana"@example.co` }},
	{"email 254", func(r *payout.Request) {
		r.Beneficiary.Email = "a@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 67) + ".co"
	}},
	{"email trailing dot", func(r *payout.Request) { r.Beneficiary.Email = "ana@example.co." }},
	{"account 6 digits", func(r *payout.Request) { r.Beneficiary.AccountNumber = "123456" }},
	{"account 20 digits", func(r *payout.Request) { r.Beneficiary.AccountNumber = strings.Repeat("9", 20) }},
	{"account leading zeros", func(r *payout.Request) { r.Beneficiary.AccountNumber = "000001" }},
	{"account with dash", func(r *payout.Request) { r.Beneficiary.AccountNumber = "123-456-78" }},
	{"deposito electronico", func(r *payout.Request) { r.Beneficiary.AccountType = payout.AccountDepositoElectronico }},
	{"amount 1", func(r *payout.Request) { r.AmountInCents = 1 }},
	{"amount at the daily limit", func(r *payout.Request) { r.AmountInCents = wompi.DefaultDailyLimitCents }},
	{"request id 64", func(r *payout.Request) { r.RequestID = strings.Repeat("r", 64) }},
	{"bank id unknown uuid", func(r *payout.Request) { r.Beneficiary.BankID = ptrTo("0f8fad5b-d9cb-469f-a165-70867728950e") }},
}

func ptrTo[T any](v T) *T { return &v }

// TestValidateAgreesWithSimulator: the edge table, then a seeded random
// loop of mutations over the same alphabet of risky characters.
func TestValidateAgreesWithSimulator(t *testing.T) {
	for _, tc := range diffEdges {
		t.Run(tc.name, func(t *testing.T) {
			r := diffRequest()
			tc.mutate(&r)
			checkAgreement(t, &r)
		})
	}

	rng := rand.New(rand.NewPCG(17, 17))
	accepted := 0
	for i := 0; i < 20000 && !t.Failed(); i++ {
		r := diffRequest()
		mutateRandom(rng, &r)
		if checkAgreement(t, &r) {
			accepted++
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d random requests were valid: the loop tests little", accepted)
	}
}

// TestValidateAgreesWithSimulatorOverHTTP posts one-payee batches to an
// in-process simulator: what ingest accepts, the server creates.
func TestValidateAgreesWithSimulatorOverHTTP(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{})
	for i, tc := range diffEdges {
		r := diffRequest()
		tc.mutate(&r)
		if wompi.Validate(&r, diffNow) != nil {
			continue
		}
		r.AmountInCents = 1000 // keep within the day's limits
		ref := fmt.Sprintf("diff-%d", i)
		_, err := c.CreatePayout(context.Background(), ref, batchr(ref, wompitest.AccountMain, wireTx(&r)))
		if tc.name == "bank id unknown uuid" {
			// A bankId given by the producer is checked by the
			// dispatcher against GET /banks, not at ingest.
			continue
		}
		if err != nil {
			t.Errorf("%s: ingest accepts it, the simulator answers %v", tc.name, err)
		}
	}
	_ = s
}

var (
	idAlphabet   = []string{"0", "1", "9", "A", "z", "-", ".", " ", "ñ", "#"}
	nameAlphabet = []string{"a", "Z", "á", "ñ", "Ü", " ", ".", ",", "'", "-", "&", "(", ")", "/", "1", "\t", "😀", "<", "\u0301", "\u00a0", "_", "\x00"}
	mailAlphabet = []string{"a", "Z", "0", ".", "-", "_", "+", "@", " ", "ñ", ",", "\"", "!"}
)

func randString(rng *rand.Rand, alphabet []string, maxLen int) string {
	var b strings.Builder
	for n := rng.IntN(maxLen + 1); n > 0; n-- {
		b.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// mutateRandom changes one to three fields of r at random.
func mutateRandom(rng *rand.Rand, r *payout.Request) {
	b := &r.Beneficiary
	types := []payout.LegalIDType{payout.LegalCC, payout.LegalNIT, payout.LegalCE, payout.LegalPP, payout.LegalTI, payout.LegalDNI}
	for k := 1 + rng.IntN(3); k > 0; k-- {
		switch rng.IntN(7) {
		case 0:
			b.LegalIDType = types[rng.IntN(len(types))]
			b.LegalID = randString(rng, idAlphabet[:4+rng.IntN(len(idAlphabet)-3)], 24)
		case 1:
			b.LegalID = fmt.Sprintf("%d", rng.Int64N(1e16))
			if rng.IntN(2) == 0 {
				b.LegalID += "-" + fmt.Sprint(rng.IntN(10))
			}
		case 2:
			b.Name = randString(rng, nameAlphabet[:2+rng.IntN(len(nameAlphabet)-1)], 110)
		case 3:
			b.Name = strings.Repeat(nameAlphabet[rng.IntN(5)], 40+rng.IntN(70))
		case 4:
			b.Email = randString(rng, mailAlphabet, 12) + "@" + randString(rng, mailAlphabet[:5], 10) + ".co"
		case 5:
			b.AccountNumber = randString(rng, idAlphabet[:4], 22)
		case 6:
			r.AmountInCents = rng.Int64N(2*wompi.DefaultDailyLimitCents) - 10
		}
	}
}

// FuzzValidateAgreesWithSimulator is the same property for go test -fuzz.
func FuzzValidateAgreesWithSimulator(f *testing.F) {
	f.Add("NIT", "900123456-7", strings.Repeat("á", 100), "a@b.co", "123456", int64(1))
	f.Add("CC", "1000000000", "María Pérez", "maria@example.co", "12345678901", int64(1_000_000))
	f.Add("CE", "E12345", "Ana\u00a0Pérez", "a+b@c.co", "000001", int64(5))
	f.Fuzz(func(t *testing.T, ltype, lid, name, email, account string, amount int64) {
		r := diffRequest()
		r.Beneficiary.LegalIDType, r.Beneficiary.LegalID = payout.LegalIDType(ltype), lid
		r.Beneficiary.Name, r.Beneficiary.Email, r.Beneficiary.AccountNumber = name, email, account
		r.AmountInCents = amount
		checkAgreement(t, &r)
	})
}
