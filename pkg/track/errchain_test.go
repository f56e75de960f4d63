package track

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The tracker's errors keep their causes: errors.As reaches the
// *wompi.Error of a failed lookup, and errors.Is reaches the
// context.DeadlineExceeded of a wait that ran out, through the class
// sentinel (errUnmapped, errUnavailable) that decides the HTTP answer.
func TestTrackerErrorsKeepTheirCauses(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, _ := f.engine(nil)
	ctx := context.Background()

	// A transaction neither Redis nor Wompi knows: Wompi answers 404.
	_, _, err := e.resolveTransaction(ctx, "no-such-payout", "no-such-tx")
	var we *wompi.Error
	if !errors.Is(err, errUnmapped) || !errors.As(err, &we) || we.HTTPStatus != http.StatusNotFound {
		t.Fatalf("resolveTransaction: %v: want errUnmapped wrapping a 404 *wompi.Error", err)
	}
	_, _, _, err = e.resolvePayout(ctx, "no-such-payout")
	we = nil
	if !errors.Is(err, errUnmapped) || !errors.As(err, &we) {
		t.Fatalf("resolvePayout: %v: want errUnmapped wrapping a *wompi.Error", err)
	}

	// A key held by another attempt until the caller's deadline passes.
	tr := transition{kind: kindRequest, id: "req-held", to: string(payout.StatusPending), ref: "tx-1", verified: true, since: mustEpoch(t, e.statuses)}
	if out, _, err := e.statuses.begin(ctx, tr, "other"); err != nil || out != outcomeOK {
		t.Fatalf("hold: %s %v", out, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	sc := &payout.StatusChange{RequestID: "req-held", TransactionID: payout.OptString("tx-1"), Status: payout.StatusApproved,
		AmountInCents: 1, OccurredAt: f.clock.Now(), Source: payout.SourceWebhook}
	_, err = e.emitRequest(dctx, sc, true, mustEpoch(t, e.statuses), nil)
	if !errors.Is(err, errUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("emit on a held key past the deadline: %v: want errUnavailable and context.DeadlineExceeded", err)
	}
}
