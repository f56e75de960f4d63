package wompi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleRequest(n int) *CreatePayoutRequest {
	r := &CreatePayoutRequest{Reference: "batch-2025-05-15-0001", AccountID: "11111111-1111-4111-8111-111111111111",
		PaymentType: PaymentTypeProviders, Transactions: make([]TransactionRequest, n)}
	for i := range r.Transactions {
		r.Transactions[i] = TransactionRequest{LegalIDType: "CC", LegalID: "1000000000",
			BankID: "00000000-0000-0000-0000-000000000000", AccountType: "AHORROS", AccountNumber: fmt.Sprintf("%010d", 1000000+i),
			Name: "José Pérez \"JP\"", Email: "jose@example.co", Amount: int64(100000 + i), Reference: fmt.Sprintf("req-%08d", i)}
	}
	return r
}

// The hand-written body must decode to the same values the struct holds,
// with the documented wire names and formats.
func TestAppendCreatePayoutBody(t *testing.T) {
	r := sampleRequest(3)
	r.Transactions[1].Name = "ctl\x01\n\t\\ \u2028 bad\xff"
	r.Transactions[2].Phone = "3001234567"
	r.DispersionDatetime = time.Date(2025, 5, 16, 19, 1, 42, 0, time.UTC) // 14:01 in Bogota
	r.Recurring = &Recurring{Interval: "MONTH", Months: 6, Description: "rent"}
	r.TransactionStatus = "FAILED"
	body := AppendCreatePayoutBody(nil, r)
	if !json.Valid(body) {
		t.Fatalf("invalid JSON: %s", body)
	}
	var got struct {
		Reference, AccountID, PaymentType, DispersionDatetime, TransactionStatus string
		Recurring                                                                map[string]any
		Transactions                                                             []map[string]any
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.DispersionDatetime != "2025-05-16T14:01" {
		t.Errorf("dispersionDatetime = %q, want Bogota minute precision", got.DispersionDatetime)
	}
	if got.Recurring["interval"] != "month" || got.Recurring["months"] != 6.0 || got.Recurring["description"] != "rent" {
		t.Errorf("recurring = %v (interval must be lower case)", got.Recurring)
	}
	if got.Reference != r.Reference || got.AccountID != r.AccountID || got.PaymentType != r.PaymentType || got.TransactionStatus != "FAILED" {
		t.Errorf("header fields = %+v", got)
	}
	for i, tx := range got.Transactions {
		want := r.Transactions[i]
		wantName := strings.ToValidUTF8(want.Name, "\ufffd")
		if tx["name"] != wantName || tx["reference"] != want.Reference || tx["amount"] != float64(want.Amount) ||
			tx["accountNumber"] != want.AccountNumber || tx["bankId"] != want.BankID || tx["legalIdType"] != "CC" ||
			tx["email"] != want.Email || tx["accountType"] != "AHORROS" || tx["legalId"] != want.LegalID {
			t.Errorf("transaction %d = %v", i, tx)
		}
	}
	if _, ok := got.Transactions[0]["phone"]; ok {
		t.Error("empty optional phone must be omitted")
	}
	if got.Transactions[2]["phone"] != "3001234567" {
		t.Error("phone missing")
	}
	// Same bytes as encoding/json would produce for the escapes.
	want, _ := json.Marshal(r.Transactions[1].Name)
	if !strings.Contains(string(body), string(want)) {
		t.Errorf("escaping differs from encoding/json: want %s in %s", want, body)
	}
	// An immediate batch has no schedule fields.
	imm := AppendCreatePayoutBody(nil, sampleRequest(1))
	var m map[string]any
	_ = json.Unmarshal(imm, &m)
	for _, k := range []string{"dispersionDatetime", "recurring", "transactionStatus"} {
		if _, ok := m[k]; ok {
			t.Errorf("immediate batch carries %s", k)
		}
	}
	if mj, _ := r.MarshalJSON(); !reflect.DeepEqual(mj, body) {
		t.Error("MarshalJSON differs from AppendCreatePayoutBody")
	}
}

// BenchmarkCreatePayoutBody encodes a 1,000-transaction batch; ns/tx and
// allocs/tx are reported per transaction.
func BenchmarkCreatePayoutBody(b *testing.B) {
	r := sampleRequest(1000)
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf = AppendCreatePayoutBody(buf[:0], r)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/tx")
	b.SetBytes(int64(len(buf)))
}

// BenchmarkCreatePayoutBodyStdlib is the encoding/json baseline.
func BenchmarkCreatePayoutBodyStdlib(b *testing.B) {
	r := sampleRequest(1000)
	type wire struct {
		Reference    string               `json:"reference"`
		AccountID    string               `json:"accountId"`
		PaymentType  string               `json:"paymentType"`
		Transactions []TransactionRequest `json:"transactions"`
	}
	w := wire{r.Reference, r.AccountID, r.PaymentType, r.Transactions}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = json.Marshal(w)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/tx")
}
