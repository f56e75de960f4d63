package wompitest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// httpStatus is the status of a client error, or 201 for none.
func httpStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	if err == nil {
		return http.StatusCreated, ""
	}
	we, ok := wompi.AsError(err)
	if !ok {
		t.Fatalf("not a wompi.Error: %v", err)
	}
	return we.HTTPStatus, we.Code
}

func stats(t *testing.T, s *wompitest.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.URL() + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Faults map[string]float64 `json:"faults"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Faults
}

// An API-key outage refuses every POST (and only POSTs), counts the keys
// it caught alive, and a key reused after it expired is counted: that is
// how a client pays twice.
func TestChaosFaultPostUnauthorized(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{IdempotencyTTL: 20 * time.Second})
	ctx := context.Background()
	post := func(key string) error {
		_, err := c.CreatePayout(ctx, key, batchr(key, wompitest.AccountMain, txr(key, "1234567890", 100)))
		return err
	}
	if err := post("k1"); err != nil { // committed: k1 is live
		t.Fatal(err)
	}
	if code, _ := raw(t, s, http.MethodPost, "/_sim/faults", nil, []byte(`{"postUnauthorized": true}`)); code != http.StatusOK {
		t.Fatalf("set faults: %d", code)
	}
	if !s.Faults().PostUnauthorized {
		t.Fatal("postUnauthorized not set through /_sim/faults")
	}
	for _, key := range []string{"k1", "k2", "k1"} {
		if st, code := httpStatus(t, post(key)); st != http.StatusUnauthorized || code != wompi.CodeUnauthorized {
			t.Fatalf("POST %s during the outage: %d %s, want 401 UNAUTHORIZED", key, st, code)
		}
	}
	if _, err := c.PayoutsPage(ctx, wompi.PayoutsFilter{Reference: "k1"}); err != nil {
		t.Fatalf("a read during the outage: %v", err)
	}
	// k1 expires inside the outage, and the settle loop forgets it.
	s.Advance(61 * time.Second)
	s.UpdateFaults(func(f *wompitest.Faults) { f.PostUnauthorized = false })
	if err := post("k1"); err != nil {
		t.Fatalf("POST with the expired key: %v", err)
	}
	got := s.InjectedFaults()
	if got.UnauthorizedPosts != 3 || got.UnauthorizedLiveKeys != 1 || got.ExpiredKeyReuses != 1 {
		t.Fatalf("counts %+v, want 3 refused, 1 live key, 1 expired reuse", got)
	}
	if e, _ := s.LedgerEntry("k1"); e.Accepted != 2 {
		t.Fatalf("k1 accepted %d times, want 2 (the expired key does not deduplicate)", e.Accepted)
	}
	st := stats(t, s)
	if st["unauthorizedPosts"] != 3 || st["unauthorizedLiveKeys"] != 1 || st["expiredKeyReuses"] != 1 {
		t.Fatalf("/_sim/stats faults %v", st)
	}
}

// A late validation failure answers a live key's reuse 400 instead of 409;
// a fresh key is not affected.
func TestChaosFaultLateReject(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	post := func(key string) error {
		_, err := c.CreatePayout(ctx, key, batchr(key, wompitest.AccountMain, txr(key, "1234567890", 100)))
		return err
	}
	if err := post("lr-1"); err != nil {
		t.Fatal(err)
	}
	if st, code := httpStatus(t, post("lr-1")); st != http.StatusConflict || code != wompi.CodeIdempotencyReused {
		t.Fatalf("reuse without the fault: %d %s, want 409 EXC_022", st, code)
	}
	if code, _ := raw(t, s, http.MethodPost, "/_sim/faults", nil, []byte(`{"lateRejectRate": 1}`)); code != http.StatusOK {
		t.Fatalf("set faults: %d", code)
	}
	if st, code := httpStatus(t, post("lr-1")); st != http.StatusBadRequest || code != wompi.CodeValidation {
		t.Fatalf("reuse with lateRejectRate 1: %d %s, want 400 VALIDATION_ERROR", st, code)
	}
	if err := post("lr-2"); err != nil {
		t.Fatalf("a fresh key with lateRejectRate 1: %v", err)
	}
	if code, _ := raw(t, s, http.MethodPost, "/_sim/faults", nil, []byte(`{"lateRejectRate": 2}`)); code != http.StatusBadRequest {
		t.Fatalf("lateRejectRate 2 accepted: %d", code)
	}
	if got := s.InjectedFaults(); got.LateRejects != 1 || got.ExpiredKeyReuses != 0 {
		t.Fatalf("counts %+v, want 1 late reject", got)
	}
	if e, _ := s.LedgerEntry("lr-1"); e.Accepted != 1 {
		t.Fatalf("lr-1 accepted %d times", e.Accepted)
	}
	if st := stats(t, s); st["lateRejects"] != 1 {
		t.Fatalf("/_sim/stats faults %v", st)
	}
}

// Armed, the outage starts right after the next lost answer: that batch's
// retry, with its key live, is refused.
func TestChaosFaultOutageAfterDrop(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	post := func(key string) error {
		_, err := c.CreatePayout(ctx, key, batchr(key, wompitest.AccountMain, txr(key, "1234567890", 100)))
		return err
	}
	if code, _ := raw(t, s, http.MethodPost, "/_sim/faults", nil, []byte(`{"postUnauthorizedAfterDrop": true}`)); code != http.StatusOK {
		t.Fatalf("set faults: %d", code)
	}
	// Lost answer; Go's transport may replay the POST (it carries an
	// Idempotency-Key) on a fresh connection, which then meets the 401.
	if err := post("od-1"); err == nil {
		t.Fatal("the armed POST succeeded, want its answer lost")
	}
	if f := s.Faults(); !f.PostUnauthorized || f.PostUnauthorizedAfterDrop {
		t.Fatalf("after the lost answer: %+v, want the outage on and disarmed", f.ChaosFaults)
	}
	if st, _ := httpStatus(t, post("od-1")); st != http.StatusUnauthorized {
		t.Fatalf("the retry: %d, want 401", st)
	}
	if got := s.InjectedFaults(); got.DroppedAnswers != 1 || got.UnauthorizedLiveKeys != 1 {
		t.Fatalf("counts %+v", got)
	}
	if e, _ := s.LedgerEntry("od-1"); e.Accepted != 1 {
		t.Fatalf("od-1 accepted %d times", e.Accepted)
	}
}
