package wompi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const vectorSecret = "prod_events_7b193c8afd7b47949f90d443cb1e1742"

// The test vectors of shared/wompi-api.md.
func TestVerifyEventVectors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"transaction FAILED",
			`{"event":"transaction.updated","data":{"transaction":{"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","payoutId":"p1","amountInCents":7500000,"status":"FAILED","payee":{"name":"x"},"failureReason":{"code":"D07","message":"m"},"currency":"COP"}},"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"%s"},"timestamp":1747673128600,"sentAt":"2025-05-15T15:00:00.000Z"}`,
			"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},
		{"payout TOTAL_PAYMENT",
			`{"event":"payout.updated","data":{"payout":{"id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5","reference":"b-1","status":"TOTAL_PAYMENT","amountInCents":7500000,"totalTransactions":3}},"signature":{"properties":["payout.id","payout.status","payout.amountInCents"],"checksum":"%s"},"timestamp":1747673128600}`,
			"639dc6bd2ac0104f090651c07773b6537f935623cf0ed04894f0687d4c9eebc7"},
		{"number with exponent and property order from the event",
			`{"event":"transaction.updated","data":{"transaction":{"amountInCents":7.5e6,"status":"FAILED","id":"04a6e53d-a244-4140-ab9e-48fa541f9fe5"}},"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"%s"},"timestamp":1747673128600}`,
			"82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inBody := []byte(strings.Replace(tt.body, "%s", tt.want, 1))
			if err := VerifyEvent(inBody, "", vectorSecret); err != nil {
				t.Fatalf("checksum in body: %v", err)
			}
			noSum := []byte(strings.Replace(tt.body, "%s", "", 1))
			if err := VerifyEvent(noSum, strings.ToUpper(tt.want), vectorSecret); err != nil {
				t.Fatalf("checksum in header: %v", err)
			}
			if err := VerifyEvent(inBody, "", vectorSecret+"x"); !errors.Is(err, ErrInvalidChecksum) {
				t.Fatalf("wrong secret: got %v", err)
			}
			// A header checksum wins over the body's.
			if err := VerifyEvent(inBody, strings.Repeat("0", 64), vectorSecret); !errors.Is(err, ErrInvalidChecksum) {
				t.Fatalf("wrong header: got %v", err)
			}
			tampered := []byte(strings.Replace(string(inBody), "7500000", "7500001", 1))
			if strings.Contains(tt.body, "7.5e6") {
				tampered = []byte(strings.Replace(string(inBody), "7.5e6", "7.6e6", 1))
			}
			if err := VerifyEvent(tampered, "", vectorSecret); !errors.Is(err, ErrInvalidChecksum) {
				t.Fatalf("tampered amount: got %v", err)
			}
		})
	}
}

// The property list is read from each event, never fixed: an event that
// signs only the id must verify with a checksum over the id alone.
func TestVerifyEventUsesTheEventsPropertyList(t *testing.T) {
	data := json.RawMessage(`{"transaction":{"id":"abc","status":"APPROVED","amountInCents":10}}`)
	sum, err := EventChecksum(data, []string{"transaction.status"}, 1, "s")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"event":"transaction.updated","data":` + string(data) + `,"signature":{"properties":["transaction.status"],"checksum":"` + sum + `"},"timestamp":1}`
	if err := VerifyEvent([]byte(body), "", "s"); err != nil {
		t.Fatalf("single property: %v", err)
	}
	full, _ := EventChecksum(data, []string{"transaction.id", "transaction.status", "transaction.amountInCents"}, 1, "s")
	if full == sum {
		t.Fatal("checksums over different property lists must differ")
	}
}

func TestVerifyEventMalformed(t *testing.T) {
	for _, body := range []string{`not json`, `{"data":{"a":1},"timestamp":1}`, `{"signature":{"properties":["a"]},"timestamp":1}`} {
		if err := VerifyEvent([]byte(body), "00", "s"); !errors.Is(err, ErrMalformedEvent) {
			t.Errorf("%s: got %v, want ErrMalformedEvent", body, err)
		}
	}
	if err := VerifyEvent([]byte(`{}`), "00", ""); !errors.Is(err, ErrInvalidChecksum) {
		t.Errorf("empty secret: got %v", err)
	}
}

func TestSignEventRoundTripAndTypedEvents(t *testing.T) {
	at := time.UnixMilli(1747673128600)
	data := map[string]any{"transaction": map[string]any{
		"id": "tx-1", "payoutId": "p-1", "amountInCents": int64(7500000), "status": "FAILED",
		"payee": map[string]any{"name": "Ana", "accountNumber": "12345678"}, "currency": "COP",
		"failureReason": map[string]any{"code": "D07", "message": "Account number does not exist"},
		"createdAt":     "2025-05-15T15:00:00.000Z",
	}}
	body, sum, err := SignEvent(EventTransactionUpdated, data, []string{"transaction.id", "transaction.status", "transaction.amountInCents"}, at, "sec")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvent(body, sum, "sec")
	if err != nil {
		t.Fatal(err)
	}
	tx := ev.Transaction
	if ev.Payout != nil || tx == nil || tx.ID != "tx-1" || tx.PayoutID != "p-1" || tx.Status != TransactionFailed ||
		tx.AmountInCents != 7500000 || tx.FailureReason.Code != "D07" || tx.Payee.AccountNumber != "12345678" ||
		ev.Timestamp != 1747673128600 || tx.CreatedAt.IsZero() {
		t.Fatalf("decoded %+v / %+v", ev, tx)
	}
	if _, err := ParseEvent(body, sum, "other"); !errors.Is(err, ErrInvalidChecksum) {
		t.Fatalf("other secret: %v", err)
	}

	pb, psum, err := SignEvent(EventPayoutUpdated, map[string]any{"payout": map[string]any{"id": "p-1", "reference": "b-1",
		"status": "TOTAL_PAYMENT", "amountInCents": 10, "totalTransactions": 2}}, []string{"payout.id", "payout.status"}, at, "sec")
	if err != nil {
		t.Fatal(err)
	}
	pev, err := ParseEvent(pb, psum, "sec")
	if err != nil || pev.Payout == nil || pev.Payout.Reference != "b-1" || pev.Payout.Status != BatchTotalPayment || pev.Payout.TotalTransactions != 2 {
		t.Fatalf("payout event: %+v %v", pev, err)
	}
}
