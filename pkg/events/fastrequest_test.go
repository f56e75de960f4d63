package events

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// slowDecode reads body with hamba, the reference the fast path must match.
func slowDecode(t testing.TB, c *Codec, body []byte) (payout.Request, error) {
	rc := &c.recs[RecordRequest]
	st := c.states.Get().(*decodeState)
	defer c.states.Put(st)
	st.meta = map[string]string{}
	r := payout.Request{Metadata: st.meta}
	err := c.decode(rc, st, append(append([]byte{}, rc.header...), body...), &r)
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
	return r, err
}

func sampleRequests() []payout.Request {
	disp := time.Date(2026, 11, 22, 14, 30, 0, 0, time.UTC)
	desc, bank, empty := "nómina", "0f8fad5b-d9cb-469f-a165-70867728950e", ""
	rail, unknownRail := "wompi", "paypal" // the codec carries any rail; ingest judges it
	base := payout.Request{
		RequestID: "req-1", OriginAccountID: "acc-1", PaymentType: payout.PaymentOther,
		Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalDNI, LegalID: "X123", Name: "Ana Ñandú", Email: "a@b.co",
			BankCode: "1007", AccountType: payout.AccountDepositoElectronico, AccountNumber: "12345678"},
		AmountInCents: 1 << 40, Currency: "COP", RequestedAt: time.UnixMilli(1_763_700_000_123).UTC(),
	}
	full := base
	full.Beneficiary.BankID = &bank
	full.DispersionDatetime = &disp
	full.Recurring = &payout.Recurring{Interval: payout.IntervalBiweek, Months: 12, Description: &desc}
	full.Metadata = map[string]string{"order": "o-1", "": "empty key", "k": ""}
	full.Beneficiary.Phone, full.Beneficiary.PixKey, full.Beneficiary.Branch = &desc, &bank, &empty
	full.Beneficiary.BranchDigit, full.Beneficiary.AccountDigit = &empty, &desc
	full.Rail = &rail
	pix := base
	pix.Currency, pix.Rail = "BRL", &unknownRail
	pix.Beneficiary.LegalIDType, pix.Beneficiary.PixKey = payout.LegalCNPJ, &bank
	pix.Beneficiary.BankCode, pix.Beneficiary.AccountNumber = "", ""
	cpf := base
	cpf.Beneficiary.LegalIDType, cpf.Beneficiary.AccountDigit = payout.LegalCPF, &desc
	minimal := payout.Request{PaymentType: payout.PaymentPayroll, RequestedAt: time.UnixMilli(-5).UTC(),
		Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalCC, AccountType: payout.AccountAhorros}}
	return []payout.Request{base, full, minimal, pix, cpf}
}

func TestFastRequestMatchesHamba(t *testing.T) {
	c, err := NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range sampleRequests() {
		b, err := c.AppendRequest(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		var fast payout.Request
		if err := decodeRequestFast(b[10:], &fast, false); err != nil {
			t.Fatalf("%d: fast: %v", i, err)
		}
		slow, err := slowDecode(t, c, b[10:])
		if err != nil {
			t.Fatalf("%d: hamba: %v", i, err)
		}
		if !reflect.DeepEqual(fast, slow) || !reflect.DeepEqual(fast, want) {
			t.Fatalf("%d:\nfast %+v\nslow %+v\nwant %+v", i, fast, slow, want)
		}
		// Every strict prefix fails in both.
		for n := 0; n < len(b)-10; n++ {
			var r payout.Request
			if decodeRequestFast(b[10:10+n], &r, false) == nil {
				t.Fatalf("%d: fast accepted a %d-byte prefix", i, n)
			}
		}
	}
}

// TestFastRequestMatchesSchema pins the field order the fast decoder reads.
func TestFastRequestMatchesSchema(t *testing.T) {
	var s struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(Schema(RecordRequest)), &s); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range s.Fields {
		names = append(names, f.Name)
	}
	want := []string{"requestId", "originAccountId", "paymentType", "beneficiary", "amountInCents", "currency", "dispersionDatetime", "recurring", "requestedAt", "metadata", "rail"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("PayoutRequested fields are %v; decodeRequestFast reads %v: update it with the schema", names, want)
	}
	// The nested layout and the enum symbols, which the fast decoder reads
	// by index.
	rs := avro.MustParse(Schema(RecordRequest)).(*avro.RecordSchema)
	var benNames []string
	for _, f := range rs.Fields() {
		if f.Name() != "beneficiary" {
			continue
		}
		for _, bf := range f.Type().(*avro.RecordSchema).Fields() {
			benNames = append(benNames, bf.Name())
			if bf.Name() == "legalIdType" {
				syms := bf.Type().(*avro.EnumSchema).Symbols()
				var ours []string
				for _, s := range legalIDTypeSyms {
					ours = append(ours, string(s))
				}
				if !reflect.DeepEqual(syms, ours) {
					t.Fatalf("legalIdType symbols %v; decodeRequestFast maps %v", syms, ours)
				}
			}
		}
	}
	wantBen := []string{"legalIdType", "legalId", "name", "email", "bankCode", "bankId", "accountType", "accountNumber", "phone", "pixKey", "branch", "branchDigit", "accountDigit"}
	if !reflect.DeepEqual(benNames, wantBen) {
		t.Fatalf("Beneficiary fields are %v; decodeRequestFast reads %v", benNames, wantBen)
	}
	if Fingerprint(RecordRequest) != 0xb8dc924fc2a517a7 {
		t.Fatal("PayoutRequested changed: check decodeRequestFast against the new schema, then re-pin")
	}
}

// FuzzFastRequest holds the fast decoder to hamba's on arbitrary bodies:
// both accept with the same result, or both refuse.
func FuzzFastRequest(f *testing.F) {
	c, err := NewCodec(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range sampleRequests() {
		b, err := c.AppendRequest(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[10:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast payout.Request
		ferr := decodeRequestFast(body, &fast, false)
		slow, serr := slowDecode(t, c, body)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("fast err %v, hamba err %v", ferr, serr)
		}
		if ferr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %+v\nhamba %+v", fast, slow)
		}
	})
}

func TestDecodeRequestWithoutMetadata(t *testing.T) {
	c, err := NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRequests()[1]
	b, _ := c.AppendRequest(nil, &want)
	var got payout.Request
	if err := c.DecodeRequestWithoutMetadata(b, &got); err != nil {
		t.Fatal(err)
	}
	want.Metadata = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if err := c.DecodeRequestWithoutMetadata(b[:len(b)-2], &got); err == nil {
		t.Fatal("a truncated metadata map was accepted")
	}
}
