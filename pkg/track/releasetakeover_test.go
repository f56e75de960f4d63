package track

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// An attempt is released (withdraw: the begin that granted it failed
// after, or its read predates a Redis loss) by its own token only. When
// the release comes after the attempt's lease ran out and another attempt
// took the key over, that one's live lease stays: cleared, the key would
// let a third attempt emit a lower status while the other's event may
// still land after it (a PENDING after the APPROVED in flight).
func TestReleaseAfterATakeoverLeavesTheOtherAttempt(t *testing.T) {
	rs := testenv.Redis(t)
	lease := time.Second
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, lease)
	ctx := context.Background()
	ep := mustEpoch(t, s)
	tr := func(to payout.Status) transition {
		return transition{kind: kindRequest, id: "req-release", to: string(to), ref: "tx-1", final: to.Final(), verified: true, since: ep}
	}
	expect := func(t2 transition, tok string, want outcome) {
		t.Helper()
		out, cur, err := s.begin(ctx, t2, tok)
		if err != nil || out != want {
			t.Fatalf("begin %s as %s: %s %q %v, want %s", t2.to, tok, out, cur, err, want)
		}
	}
	expect(tr(payout.StatusPending), "a", outcomeOK)
	time.Sleep(lease + 200*time.Millisecond) // a's lease runs out before its release
	expect(tr(payout.StatusApproved), "b", outcomeOK)
	cause := errors.New("begin failed after its grant")
	if err := s.withdraw(ctx, []transition{tr(payout.StatusPending)}, []string{"a"}, []int{0}, cause); !errors.Is(err, cause) {
		t.Fatalf("withdraw: %v, want its cause", err)
	}
	// b still holds the key: a PENDING waits for it.
	expect(tr(payout.StatusPending), "c", outcomeBusy)
	if err := s.end(ctx, tr(payout.StatusApproved), "b", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.last(ctx, kindRequest, "req-release"); st != string(payout.StatusApproved) {
		t.Fatalf("confirmed status %q, want APPROVED: b's attempt was released by a's token", st)
	}
	expect(tr(payout.StatusPending), "d", outcomeStale)
}
