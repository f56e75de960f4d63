package wompi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// A GET /limits answer with a negative client-wide figure is Wompi's
// mistake: the dispatcher's budget refuses to seed from it, and that
// refusal ends a batch for good (REJECTED, though nothing is wrong with
// it). UsageOn answers it as a retryable error instead. A negative figure
// of one account leaves that account out (it is seeded from the
// client-wide figure, an upper bound), and a negative limit reads as none
// known, so that one odd entry holds no other account's batches.
func TestUsageOnRefusesNegativeFigures(t *testing.T) {
	for name, c := range map[string]struct {
		body     string
		ok       bool
		accounts string
	}{
		"sound":                     {`{"limits":{"dailyLimit":100,"dailyConsumed":40},"numberOfBatchesConsumed":3,"accounts":[{"accountId":"a","dailyLimit":50,"dailyConsumed":10}],"date":"2026-12-07"}`, true, "[{a 10 50}]"},
		"negative consumed":         {`{"limits":{"dailyLimit":100,"dailyConsumed":-1}}`, false, ""},
		"negative batches":          {`{"limits":{"dailyConsumed":0},"numberOfBatchesConsumed":-2}`, false, ""},
		"an account's consumed":     {`{"limits":{"dailyConsumed":0},"accounts":[{"accountId":"a","dailyLimit":50,"dailyConsumed":-10},{"accountId":"b","dailyLimit":50,"dailyConsumed":5}]}`, true, "[{b 5 50}]"},
		"an account's daily limit":  {`{"limits":{"dailyConsumed":0},"accounts":[{"accountId":"a","dailyLimit":-50,"dailyConsumed":10}]}`, true, "[{a 10 0}]"},
		"zero everywhere (a fresh)": {`{"limits":{"dailyConsumed":0}}`, true, "[]"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			cl, err := wompi.New(wompi.Config{BaseURL: srv.URL, APIKey: "k", PrincipalID: "p"})
			if err != nil {
				t.Fatal(err)
			}
			u, err := wompi.NewRail(cl, wompi.RailConfig{}).UsageOn(context.Background(), "2026-12-07")
			if c.ok {
				if err != nil {
					t.Fatalf("UsageOn: %v", err)
				}
				if got := fmt.Sprint(u.Accounts); got != c.accounts {
					t.Fatalf("accounts %s, want %s", got, c.accounts)
				}
				return
			}
			if err == nil || rail.ClassOf(err) != rail.Retryable {
				t.Fatalf("UsageOn = %+v, %v (class %s); want a retryable error", u, err, rail.ClassOf(err))
			}
			// Wompi answered (200): the dispatcher's call metrics must not
			// count it as a transport failure (a status of 0).
			var re *rail.Error
			if !errors.As(err, &re) || re.HTTPStatus != http.StatusOK {
				t.Fatalf("UsageOn error %v carries no status of the answer, want %d", err, http.StatusOK)
			}
		})
	}
}
