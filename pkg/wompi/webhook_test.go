package wompi

import (
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
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
// signs the required three in another order, plus the payoutId, verifies
// with a checksum over exactly that list.
func TestVerifyEventUsesTheEventsPropertyList(t *testing.T) {
	data := json.RawMessage(`{"transaction":{"id":"abc","payoutId":"p","status":"APPROVED","amountInCents":10}}`)
	props := []string{"transaction.amountInCents", "transaction.payoutId", "transaction.status", "transaction.id"}
	sum, err := EventChecksum(data, props, 1747673128600, "s")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := json.Marshal(props)
	body := `{"event":"transaction.updated","data":` + string(data) + `,"signature":{"properties":` + string(list) + `,"checksum":"` + sum + `"},"timestamp":1747673128600}`
	if err := VerifyEvent([]byte(body), "", "s"); err != nil {
		t.Fatalf("four properties: %v", err)
	}
	full, _ := EventChecksum(data, []string{"transaction.id", "transaction.status", "transaction.amountInCents"}, 1747673128600, "s")
	if full == sum {
		t.Fatal("checksums over different property lists must differ")
	}
	// An event name we do not handle needs no particular property.
	one, _ := EventChecksum(data, []string{"transaction.status"}, 1747673128600, "s")
	other := `{"event":"transaction.created","data":` + string(data) + `,"signature":{"properties":["transaction.status"],"checksum":"` + one + `"},"timestamp":1747673128600}`
	if err := VerifyEvent([]byte(other), "", "s"); err != nil {
		t.Fatalf("unknown event, one property: %v", err)
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
		"status": "TOTAL_PAYMENT", "amountInCents": 10, "totalTransactions": 2}}, []string{"payout.id", "payout.status", "payout.amountInCents"}, at, "sec")
	if err != nil {
		t.Fatal(err)
	}
	pev, err := ParseEvent(pb, psum, "sec")
	if err != nil || pev.Payout == nil || pev.Payout.Reference != "b-1" || pev.Payout.Status != BatchTotalPayment || pev.Payout.TotalTransactions != 2 {
		t.Fatalf("payout event: %+v %v", pev, err)
	}
}

// signedTx is a genuine transaction.updated of the documented shape.
func signedTx(t *testing.T, props []string, tx map[string]any) (string, string) {
	t.Helper()
	body, sum, err := SignEvent(EventTransactionUpdated, map[string]any{"transaction": tx}, props, time.UnixMilli(1747673128600), vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	return string(body), sum
}

// Issue 15 item 1: a body that can be read two ways, or whose signature
// does not cover what the event asserts, is refused, whatever its checksum.
func TestParseEventRefusesForgeries(t *testing.T) {
	three := []string{"transaction.id", "transaction.status", "transaction.amountInCents"}
	tx := map[string]any{"id": "tx-a", "payoutId": "p-1", "amountInCents": 7500000, "status": "FAILED"}
	good, sum := signedTx(t, three, tx)
	if _, err := ParseEvent([]byte(good), sum, vectorSecret); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	pay, psum, err := SignEvent(EventPayoutUpdated, map[string]any{"payout": map[string]any{"id": "p-1", "status": "PENDING", "amountInCents": 7500000}},
		[]string{"payout.id", "payout.status", "payout.amountInCents"}, time.UnixMilli(1747673128600), vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	noAmount, nsum := signedTx(t, three[:2], tx)
	for _, tc := range []struct {
		name, body, sum string
		want            error
	}{
		{"case-variant ID and Status appended", strings.Replace(good, `"status":"FAILED"`, `"status":"FAILED","ID":"tx-b","Status":"CANCELLED"`, 1), sum, ErrAmbiguousEvent},
		{"Kelvin-sign case variant", strings.Replace(good, `"status":"FAILED"`, `"status":"FAILED","\u212Aey":1,"key":2`, 1), sum, ErrAmbiguousEvent},
		{"duplicate key", strings.Replace(good, `"status":"FAILED"`, `"status":"FAILED","status":"FAILED"`, 1), sum, ErrAmbiguousEvent},
		{"duplicate top-level key", strings.Replace(good, `"event":"transaction.updated"`, `"event":"transaction.updated","event":"payout.updated"`, 1), sum, ErrAmbiguousEvent},
		{"case-variant Data", strings.Replace(good, `"event":"transaction.updated"`, `"event":"transaction.updated","Data":{}`, 1), sum, ErrAmbiguousEvent},
		{"payout.updated signature relabelled", strings.Replace(strings.Replace(string(pay), `"event":"payout.updated"`, `"event":"transaction.updated"`, 1),
			`"data":{`, `"data":{"transaction":{"id":"tx-a","status":"APPROVED","amountInCents":7500000},`, 1), psum, ErrUnsignedField},
		{"amount not signed", noAmount, nsum, ErrUnsignedField},
		{"trailing data", good + `{"event":"x"}`, sum, ErrMalformedEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tc.body), tc.sum, vectorSecret)
			if !errors.Is(err, tc.want) || ev != nil {
				t.Fatalf("got %v %v, want %v", ev, err, tc.want)
			}
		})
	}
	// The typed event is read with the same exact-case keys the checksum
	// read: a lone "PayoutId" is not the payoutId.
	lone := strings.Replace(good, `"payoutId"`, `"PayoutId"`, 1)
	ev, err := ParseEvent([]byte(lone), sum, vectorSecret)
	if err != nil || ev.Transaction.PayoutID != "" || ev.Transaction.ID != "tx-a" || ev.Transaction.AmountInCents != 7500000 {
		t.Fatalf("lone PayoutId: %+v %v", ev, err)
	}
}

// Issue 15 item 3: an unsigned body that names a large value many times
// is refused after bounded work: no more than a few times its own size is
// allocated, however many times the value is named.
func TestParseEventAmplificationBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value int // bytes of the repeated value
		times int // how often the property list names it
	}{
		{"60 KB body naming data 400 times", 50 << 10, 400},
		{"400 KB value named 2000 times", 400 << 10, 2000},
		{"400 KB value named 30 times", 400 << 10, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := amplificationBody(tc.value, tc.times)
			var err error
			allocs := allocatedBytes(func() { err = VerifyEvent(body, strings.Repeat("0", 64), vectorSecret) })
			if !errors.Is(err, ErrMalformedEvent) && !errors.Is(err, ErrInvalidChecksum) {
				t.Fatalf("accepted or odd error: %v", err)
			}
			if limit := uint64(20*len(body)) + 1<<20; allocs > limit {
				t.Fatalf("a %d-byte body allocated %d bytes (limit %d)", len(body), allocs, limit)
			}
			t.Logf("%d-byte body: %d bytes allocated, %v", len(body), allocs, err)
		})
	}
}

// amplificationBody is issue 15's body: one large value under data, named
// times times by the property list (as "blob", and as "data"-level object
// "big", which the old code re-rendered whole for each name).
func amplificationBody(value, times int) []byte {
	props := make([]string, times)
	for i := range props {
		props[i] = "big"
		if i%2 == 1 {
			props[i] = "big.blob"
		}
	}
	list, _ := json.Marshal(props)
	return []byte(`{"event":"transaction.updated","data":{"big":{"blob":"` + strings.Repeat("x", value) + `"}},` +
		`"signature":{"properties":` + string(list) + `,"checksum":"00"},"timestamp":1}`)
}

// An unsigned body of many small values, each of which a parse would turn
// into a map, a slice or a boxed number many times its size (53 MB for a
// MiB of zeros before maxEventValues), is refused after bounded work: no
// more than a few times its own size is allocated.
func TestParseEventManyValuesBounded(t *testing.T) {
	fill := func(prefix, elem, suffix string) []byte {
		var b strings.Builder
		b.WriteString(prefix)
		for i := 0; b.Len() < 1<<20-len(suffix)-len(elem)-20; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(strings.ReplaceAll(elem, "%d", strconv.Itoa(i)))
		}
		b.WriteString(suffix)
		return []byte(b.String())
	}
	for name, body := range map[string][]byte{
		"zeros":         fill(`{"data":[`, `0`, `]}`),
		"empty objects": fill(`{"data":[`, `{}`, `]}`),
		"empty arrays":  fill(`{"data":[`, `[]`, `]}`),
		"empty strings": fill(`{"data":[`, `""`, `]}`),
		"nulls":         fill(`{"data":[`, `null`, `]}`),
		"short keys":    fill(`{"data":{`, `"%d":0`, `}}`),
		"long keys":     fill(`{"data":{`, `"%d`+strings.Repeat("k", 250)+`":0`, `}}`),
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			allocs := allocatedBytes(func() { _, err = ParseEvent(body, strings.Repeat("0", 64), vectorSecret) })
			if !errors.Is(err, ErrMalformedEvent) {
				t.Fatalf("accepted or odd error: %v", err)
			}
			if limit := uint64(4 * len(body)); allocs > limit {
				t.Fatalf("a %d-byte body allocated %d bytes (limit %d): %v", len(body), allocs, limit, err)
			}
			t.Logf("%d-byte body: %d bytes allocated, %v", len(body), allocs, err)
		})
	}
}

func allocatedBytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The bounds themselves: more than MaxSignedProperties properties, or
// more than MaxSignedBytes of values, or an object named, are refused
// before any comparison.
func TestParseEventSignatureBounds(t *testing.T) {
	tx := map[string]any{"id": "tx-a", "amountInCents": 1, "status": "FAILED", "note": strings.Repeat("n", MaxSignedBytes)}
	many := make([]string, MaxSignedProperties+1)
	for i := range many {
		many[i] = "transaction.id"
	}
	for _, props := range [][]string{many, {"transaction.id", "transaction.status", "transaction.amountInCents", "transaction.note"},
		{"transaction.id", "transaction.status", "transaction.amountInCents", "transaction"}} {
		data, _ := json.Marshal(map[string]any{"transaction": tx})
		if _, err := EventChecksum(data, props, 1, "s"); !errors.Is(err, ErrSignatureTooLarge) {
			t.Errorf("%d properties: %v, want ErrSignatureTooLarge", len(props), err)
		}
	}
}
