package smartfastpay_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// TestFindManyFoldsOurIDsToo: FindMany compares a listed transaction_id
// with the folded form of each of our ids (rail.FoldID), not with our ids
// as written. Ours "000777", listed as the JSON number 777, and ours
// "REQ-9", listed as "req-9", are ours once folded: FindMany fails
// (Permanent) rather than call those payees absent, which would let the
// dispatcher POST them again. Find already does (TestFoldID).
func TestFindManyFoldsOurIDsToo(t *testing.T) {
	for name, tc := range map[string]struct {
		listed string   // the listed transaction_id, as JSON
		ours   []string // the ids looked up
	}{
		"leading zeros lost to a number":   {`777`, []string{"req-41", "000777"}},
		"our id in capitals, listed lower": {`"req-9"`, []string{"req-41", "REQ-9"}},
	} {
		t.Run(name, func(t *testing.T) {
			c := newStub(t, &stub{api: answer(200, `{"data":[{"id":"7","transaction_id":`+tc.listed+`,"amount":"2.00","status":"paid"}]}`)})
			many, err := c.FindMany(ctx, tc.ours)
			if err == nil || rail.ClassOf(err) != rail.Permanent || len(many) != 0 {
				t.Fatalf("FindMany(%v) over a listed %s: %+v %v; want a Permanent failure, never absence", tc.ours, tc.listed, many, err)
			}
		})
	}
}

// TestVerifyRefusesEverythingWithoutASecret: with no webhook secret
// configured, Verify refuses even a header signed with the empty key. An
// HMAC under "" is one anyone can compute: accepted, it would let a forged
// callback finalise a payout (a FAILED the marketplace pays again).
func TestVerifyRefusesEverythingWithoutASecret(t *testing.T) {
	body := []byte(`{"requestId":"r","data":[{"id":"7","transaction_id":"req-1","amount":"2.00","type":"payout","payout_status":"failed"}]}`)
	now := time.UnixMilli(1681235417000)
	w := sfp.Webhooks{Secret: "", Now: func() time.Time { return now }}
	if _, err := w.Verify(sfp.Sign("", now, body), body); !errors.Is(err, sfp.ErrSignature) {
		t.Fatalf("a callback signed with the empty key, no secret configured: %v, want ErrSignature", err)
	}
}

// TestVerifyMaxAgeRefusesTheFuture: MaxAge bounds a signature's t both
// ways: one signed more than MaxAge ahead of our clock is ErrStale too (it
// would stay replayable for that much longer).
func TestVerifyMaxAgeRefusesTheFuture(t *testing.T) {
	body := []byte(`{"callback":true}`)
	signed := time.UnixMilli(1681235417000)
	w := sfp.Webhooks{Secret: "s", MaxAge: time.Hour, Now: func() time.Time { return signed.Add(-72 * time.Hour) }}
	if _, err := w.Verify(sfp.Sign("s", signed, body), body); !errors.Is(err, sfp.ErrStale) {
		t.Fatalf("signed 72h ahead, MaxAge 1h: %v, want ErrStale", err)
	}
	w.Now = func() time.Time { return signed.Add(-30 * time.Minute) }
	if _, err := w.Verify(sfp.Sign("s", signed, body), body); err != nil {
		t.Fatalf("signed 30m ahead, MaxAge 1h: %v", err)
	}
}

// TestRefusalHidesEverySentValue: a 400 to a create whose message and
// code quote what the call sent of the payee that no heuristic of Mask
// tells (a name, the marketplace's own customer id, a short document): none
// of it reaches the error, whose message becomes the REJECTED event's
// reasonMessage and every log line.
func TestRefusalHidesEverySentValue(t *testing.T) {
	req := validRequest("")("req-1", 5000)
	req.Payee.CustomerID = "cust-ab-xyz"
	req.Payee.LegalID = "AB123"
	st := &stub{api: answer(400, `{"requestId":"r","moreInformation":"customer cust-ab-xyz (document AB123) is blocked","code":"BLOCKED_Ana Gómez"}`)}
	c := newStub(t, st)
	_, err := c.Create(ctx, req)
	re := railErr(t, err)
	for _, leak := range []string{"cust-ab-xyz", "AB123", "Gómez"} {
		if strings.Contains(re.Message, leak) || strings.Contains(re.Code, leak) || strings.Contains(err.Error(), leak) {
			t.Errorf("the refusal keeps the sent value %q: %q", leak, err.Error())
		}
	}
	if !strings.Contains(re.Message, "is blocked") || re.HTTPStatus != http.StatusBadRequest {
		t.Errorf("the refusal lost its words: %q", re.Message)
	}
}
