package wompi

import (
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// The tracker's mapping of a transaction's failure reason is the contract:
// a FAILED or CANCELLED request carries the code and message, any other
// none, whatever Wompi sends.
func TestItemReasonOnlyForFailedAndCancelled(t *testing.T) {
	fr := FailureReason{Code: "D07", Message: "D07: Account number does not exist"}
	for _, tc := range []struct {
		status TransactionStatus
		want   payout.Status
		reason bool
	}{
		{TransactionPending, payout.StatusPending, false},
		{TransactionProcessing, payout.StatusPending, false},
		{TransactionApproved, payout.StatusApproved, false},
		{TransactionFailed, payout.StatusFailed, true},
		{TransactionRejected, payout.StatusFailed, true},
		{TransactionCancelled, payout.StatusCancelled, true},
		{"SOMETHING_NEW", "", false},
	} {
		it := (&Transaction{ID: "tx", Reference: "req", Status: tc.status, FailureReason: fr, AmountInCents: 5}).item()
		p := itemOf(&it)
		wantCode, wantMsg := "", ""
		if tc.reason {
			wantCode, wantMsg = fr.Code, fr.Message
		}
		if p.Status != tc.want || p.ProviderStatus != string(tc.status) || p.Reason != wantCode || p.ReasonMessage != wantMsg ||
			p.ID != "req" || p.ProviderID != "tx" || p.AmountInCents != 5 {
			t.Errorf("%s: %+v, want status %q, reason %q %q", tc.status, p, tc.want, wantCode, wantMsg)
		}
	}
}

// batchOf carries what the tracker reads of a batch: the account, the
// payment type, the status message, the dispersion and the recurrence
// (biweek or BIWEEK is BIWEEK, anything else MONTH, as the tracker mapped
// it before the seam).
func TestBatchOfCarriesWhatTheTrackerReads(t *testing.T) {
	at, _ := ParseDispersion("2026-12-03T09:30")
	for _, tc := range []struct {
		name string
		in   Payout
		want rail.Batch
	}{
		{"immediate, no recurrence",
			Payout{ID: "p", Reference: "b", Status: BatchPending, AmountInCents: 9, TotalTransactions: 2, PaymentType: "PAYROLL",
				AccountID: "acc", StatusMessage: "on its way"},
			rail.Batch{ProviderID: "p", Reference: "b", Status: payout.BatchPending, ProviderStatus: "PENDING", AmountInCents: 9,
				ItemCount: 2, PaymentType: "PAYROLL", OriginAccountID: "acc", StatusMessage: "on its way"}},
		{"unknown status, unreadable dispersion",
			Payout{ID: "p", Status: "SOMETHING_NEW", DispersionDatetime: "soon"},
			rail.Batch{ProviderID: "p", ProviderStatus: "SOMETHING_NEW"}},
		{"scheduled, biweek",
			Payout{ID: "p", Status: BatchPending, DispersionDatetime: "2026-12-03T09:30", Recurring: &Recurring{Interval: "biweek", Months: 3, Description: "d"}},
			rail.Batch{ProviderID: "p", Status: payout.BatchPending, ProviderStatus: "PENDING", DispersionAt: at,
				Recurring: &rail.Recurring{Interval: "BIWEEK", Months: 3, Description: "d"}}},
		{"BIWEEK", Payout{ID: "p", Recurring: &Recurring{Interval: "BIWEEK", Months: 6}},
			rail.Batch{ProviderID: "p", Recurring: &rail.Recurring{Interval: "BIWEEK", Months: 6}}},
		{"month", Payout{ID: "p", Recurring: &Recurring{Interval: "month", Months: 12}},
			rail.Batch{ProviderID: "p", Recurring: &rail.Recurring{Interval: "MONTH", Months: 12}}},
		{"another spelling is MONTH", Payout{ID: "p", Recurring: &Recurring{Interval: "Biweek", Months: 3}},
			rail.Batch{ProviderID: "p", Recurring: &rail.Recurring{Interval: "MONTH", Months: 3}}},
	} {
		got := batchOf(&tc.in)
		if !got.DispersionAt.Equal(tc.want.DispersionAt) {
			t.Errorf("%s: dispersion %v, want %v", tc.name, got.DispersionAt, tc.want.DispersionAt)
		}
		got.DispersionAt, tc.want.DispersionAt = time.Time{}, time.Time{}
		gr, wr := got.Recurring, tc.want.Recurring
		got.Recurring, tc.want.Recurring = nil, nil
		if got != tc.want || (gr == nil) != (wr == nil) || (gr != nil && *gr != *wr) {
			t.Errorf("%s: %+v (recurring %+v), want %+v (recurring %+v)", tc.name, got, gr, tc.want, wr)
		}
	}
}

// A verified webhook carries what the tracker read of wompi.Event: the
// signed timestamp, a payout's unsigned paymentType and dispersion, a
// failed transaction's code and message.
func TestVerifyWebhookCarriesWhatTheTrackerReads(t *testing.T) {
	const secret = "s3cret"
	r := NewRail(nil, RailConfig{EventsSecret: secret})
	at := time.UnixMilli(1747673128600)
	sign := func(event string, data any, props []string) http.Header {
		t.Helper()
		body, sum, err := SignEvent(event, data, props, at, secret)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(HeaderEventChecksum, sum)
		ev, err := r.VerifyWebhook(h, body)
		if err != nil {
			t.Fatal(err)
		}
		if !ev.SignedAt.Equal(at) || ev.Name != event {
			t.Fatalf("%s: signed at %v, name %q", event, ev.SignedAt, ev.Name)
		}
		switch event {
		case EventPayoutUpdated:
			want, _ := ParseDispersion("2026-12-03T09:30")
			if b := ev.Batch; ev.Item != nil || b == nil || b.PaymentType != "PAYROLL" || !b.DispersionAt.Equal(want) ||
				b.Status != payout.BatchPending || b.Reference != "batch-1" {
				t.Fatalf("payout event: %+v %+v", ev.Batch, ev.Item)
			}
		case EventTransactionUpdated:
			if p := ev.Item; ev.Batch != nil || p == nil || p.Reason != "D07" || p.ReasonMessage != "no such account" ||
				p.Status != payout.StatusFailed || ev.BatchProviderID != "p-1" {
				t.Fatalf("transaction event: %+v %+v", ev.Item, ev.Batch)
			}
		}
		return h
	}
	sign(EventPayoutUpdated, map[string]any{"payout": map[string]any{"id": "p-1", "status": "PENDING", "amountInCents": 10,
		"reference": "batch-1", "paymentType": "PAYROLL", "dispersionDatetime": "2026-12-03T09:30"}},
		[]string{"payout.id", "payout.status", "payout.amountInCents"})
	sign(EventTransactionUpdated, map[string]any{"transaction": map[string]any{"id": "t-1", "payoutId": "p-1", "status": "FAILED",
		"amountInCents": 10, "failureReason": map[string]any{"code": "D07", "message": "no such account"}}},
		[]string{"transaction.id", "transaction.status", "transaction.amountInCents"})
}
