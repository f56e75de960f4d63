package events

import (
	"context"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/registry"

	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Personal data that must never show up in an error.
const (
	piiName    = "Maria Fernanda Lopez"
	piiLegalID = "1020304050"
	piiAccount = "00123456789"
	piiEmail   = "maria@example.co"
	piiPhone   = "573001234567"
	piiPixKey  = "maria.pix@example.com.br"
)

func ptr[T any](v T) *T { return &v }

func ms(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

func fullBeneficiary() payout.Beneficiary {
	return payout.Beneficiary{
		LegalIDType:   payout.LegalCC,
		LegalID:       piiLegalID,
		Name:          piiName,
		Email:         piiEmail,
		BankCode:      "1007",
		BankID:        ptr("5f7c4a8e-1111-4c2b-9d1e-0a0b0c0d0e0f"),
		AccountType:   payout.AccountAhorros,
		AccountNumber: piiAccount,
		Phone:         ptr(piiPhone),
		PixKey:        ptr(piiPixKey),
		Branch:        ptr("0001"),
		BranchDigit:   ptr("9"),
		AccountDigit:  ptr("X"),
	}
}

// withoutRailFields clears what the rails added to the Beneficiary: what a
// record written with a previous schema decodes to.
func withoutRailFields(b payout.Beneficiary) payout.Beneficiary {
	b.Phone, b.PixKey, b.Branch, b.BranchDigit, b.AccountDigit = nil, nil, nil, nil, nil
	return b
}

// pixRequest is a WEpayout PIX payout to a Brazilian company.
func pixRequest() *payout.Request {
	return &payout.Request{
		RequestID:       "req-br-0001",
		OriginAccountID: "acc-br-1",
		PaymentType:     payout.PaymentProviders,
		Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalCNPJ, LegalID: "11222333000181", Name: piiName,
			Email: piiEmail, AccountType: payout.AccountCorriente, PixKey: ptr(piiPixKey)},
		AmountInCents: 5_034,
		Currency:      "BRL",
		RequestedAt:   ms("2026-11-20T10:11:12.345Z"),
		Rail:          ptr("wepayout"),
	}
}

func fullRequest() *payout.Request {
	return &payout.Request{
		RequestID:          "req-0001-abc",
		OriginAccountID:    "acc-origin-1",
		PaymentType:        payout.PaymentProviders,
		Beneficiary:        fullBeneficiary(),
		AmountInCents:      1_000_000,
		Currency:           "COP",
		DispersionDatetime: ptr(ms("2026-12-01T14:30:00Z")),
		Recurring:          &payout.Recurring{Interval: payout.IntervalMonth, Months: 6, Description: ptr("rent")},
		RequestedAt:        ms("2026-11-20T10:11:12.345Z"),
		Metadata:           map[string]string{"orderId": "o-77", "channel": "app"},
		Rail:               ptr("smartfastpay"),
	}
}

// typicalRequest is what the hot path sees most: immediate, one metadata entry.
func typicalRequest() *payout.Request {
	r := fullRequest()
	r.DispersionDatetime, r.Recurring, r.Beneficiary.BankID = nil, nil, nil
	r.Beneficiary = withoutRailFields(r.Beneficiary)
	r.Metadata = map[string]string{"orderId": "o-77"}
	r.Rail = nil
	return r
}

func minimalRequest() *payout.Request {
	return &payout.Request{
		RequestID:       "r",
		PaymentType:     payout.PaymentPayroll,
		Beneficiary:     payout.Beneficiary{LegalIDType: payout.LegalDNI, AccountType: payout.AccountDepositoElectronico},
		AmountInCents:   1,
		RequestedAt:     ms("2026-11-20T10:00:00Z"),
		Currency:        "COP",
		OriginAccountID: "a",
	}
}

func fullBatch(n int) *payout.Batch {
	b := &payout.Batch{
		BatchID:         "batch-acc-origin-1-0001",
		OriginAccountID: "acc-origin-1",
		PaymentType:     payout.PaymentPayroll,
		Schedule: payout.Schedule{
			DispersionDatetime: ptr(ms("2026-12-01T14:30:00Z")),
			Recurring:          &payout.Recurring{Interval: payout.IntervalBiweek, Months: 3},
		},
		CreatedAt: ms("2026-11-20T10:12:00Z"),
		Attempt:   2,
		NotBefore: ptr(ms("2026-11-21T05:00:00Z")),
		Rail:      ptr("wompi"),
	}
	for i := range n {
		ben := fullBeneficiary()
		if i%2 == 1 {
			ben.BankID = nil
			ben = withoutRailFields(ben)
		}
		b.Transactions = append(b.Transactions, payout.Transaction{
			RequestID: "req-" + string(rune('a'+i%26)) + "-" + time.Duration(i).String(), Beneficiary: ben,
			AmountInCents: int64(1000 + i), RequestedAt: ms("2026-11-20T10:11:12.345Z"),
		})
		b.TotalAmountInCents += int64(1000 + i)
	}
	b.TransactionCount = int32(n)
	return b
}

func minimalBatch() *payout.Batch {
	return &payout.Batch{BatchID: "b", PaymentType: payout.PaymentOther, CreatedAt: ms("2026-11-20T10:12:00Z"), Transactions: []payout.Transaction{}}
}

func fullStatusChange() *payout.StatusChange {
	return &payout.StatusChange{
		EventID: "ev-1", RequestID: "req-0001-abc", BatchID: ptr("batch-1"), PayoutID: ptr("pay-1"), TransactionID: ptr("tx-1"),
		Status: payout.StatusFailed, PreviousStatus: ptr(payout.StatusPending), ReasonCode: ptr("D05"), ReasonMessage: ptr("account closed"),
		AmountInCents: 1_000_000, OriginAccountID: "acc-origin-1", OccurredAt: ms("2026-11-21T08:00:00.001Z"), Source: payout.SourceWebhook,
		Rail: ptr("wompi"),
	}
}

func minimalStatusChange() *payout.StatusChange {
	return &payout.StatusChange{EventID: "e", RequestID: "r", Status: payout.StatusRejected, OccurredAt: ms("2026-11-21T08:00:00Z"), Source: payout.SourceIngest}
}

func fullBatchStatusChange() *payout.BatchStatusChange {
	return &payout.BatchStatusChange{
		EventID: "bev-1", BatchID: "batch-1", PayoutID: ptr("pay-1"), OriginAccountID: "acc-origin-1", PaymentType: payout.PaymentProviders,
		Schedule: payout.Schedule{DispersionDatetime: ptr(ms("2026-12-01T14:30:00Z")), Recurring: &payout.Recurring{Interval: payout.IntervalMonth, Months: 12, Description: ptr("x")}},
		Status:   payout.BatchPartialPayment, PreviousStatus: ptr(payout.BatchPending), StatusMessage: ptr("2 of 3 paid"),
		TotalAmountInCents: 3000, TransactionCount: 3, OccurredAt: ms("2026-11-21T09:00:00Z"), Source: payout.SourcePoll,
		Rail: ptr("wompi"),
	}
}

func minimalBatchStatusChange() *payout.BatchStatusChange {
	return &payout.BatchStatusChange{EventID: "e", BatchID: "b", PaymentType: payout.PaymentOther, Status: payout.BatchPendingApproval, OccurredAt: ms("2026-11-21T09:00:00Z"), Source: payout.SourceDispatcher}
}

// newSOECodec returns a codec without a registry.
func newSOECodec(t testing.TB, opts ...Option) *Codec {
	t.Helper()
	c, err := NewCodec(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newRegistryCodec returns a codec on a fresh registrytest server.
func newRegistryCodec(t testing.TB, opts ...Option) (*Codec, *registrytest.Server) {
	t.Helper()
	srv := registrytest.NewServer()
	t.Cleanup(srv.Close)
	c, err := NewCodec(context.Background(), append([]Option{WithRegistry(srv.URL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// memRegistry is an in-process registry.Registry for the fuzz target, so
// fuzzing never does HTTP.
type memRegistry struct {
	registry.Registry // nil: other methods are not called
	byID              map[int]avro.Schema
	bySchema          map[string]int
}

func newMemRegistry() *memRegistry {
	return &memRegistry{byID: map[int]avro.Schema{}, bySchema: map[string]int{}}
}

func (m *memRegistry) CreateSchema(_ context.Context, _, schema string, _ ...registry.SchemaReference) (int, avro.Schema, error) {
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	if err != nil {
		return 0, nil, err
	}
	if id, ok := m.bySchema[schema]; ok {
		return id, s, nil
	}
	id := 100 + len(m.byID)
	m.byID[id], m.bySchema[schema] = s, id
	return id, s, nil
}

func (m *memRegistry) GetSchema(_ context.Context, id int) (avro.Schema, error) {
	if s, ok := m.byID[id]; ok {
		return s, nil
	}
	return nil, registry.Error{StatusCode: 404, Code: 40403, Message: "not found"}
}

// returnedStatusChange is a paid request reversed by the rail.
func returnedStatusChange() *payout.StatusChange {
	return &payout.StatusChange{
		EventID: "ev-ret", RequestID: "req-0001-abc", BatchID: ptr("batch-1"), PayoutID: ptr("pay-1"), TransactionID: ptr("tx-1"),
		Status: payout.StatusReturned, PreviousStatus: ptr(payout.StatusApproved), ReasonCode: ptr("refunded"),
		AmountInCents: 1_000_000, OriginAccountID: "acc-origin-1", OccurredAt: ms("2026-11-22T08:00:00Z"), Source: payout.SourceWebhook,
		Rail: ptr("smartfastpay"),
	}
}
