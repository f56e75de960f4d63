package dispatch

import (
	"context"
	"errors"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A job whose lease ran out while it was cut off lets the batch go when it
// returns (letGo): its release must not free the lease of the replica that
// took the batch over meanwhile, which may have a POST in flight; a third
// claimant is still told "busy".
func TestReleaseByAFormerOwnerKeepsTheNewLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	if c, err := e.st.claim(ctx, "new-owner", "e0", "b-release", rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := e.st.releaseLease(ctx, "former-owner", "b-release"); err != nil {
		t.Fatal(err)
	}
	if c, err := e.st.claim(ctx, "third", "e0", "b-release", rail.Wompi); err != nil || c.code != "busy" {
		t.Fatalf("claim after a former owner's release: %+v %v, want busy (the lease of the new owner kept)", c, err)
	}
	if _, err := e.st.transition(ctx, "new-owner", "e0", "b-release", []string{stateClaimed}, statePosting); err != nil {
		t.Fatalf("the new owner lost the batch to a former owner's release: %v", err)
	}
}

// A batch Wompi accepted (posted) never moves back to posting: a step
// that expects the record in an earlier state (a resumed attempt acting on
// what it read before another one moved the batch on) is refused, and the
// record keeps its state, so no second POST follows.
func TestTransitionFromAnotherStateIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	if c, err := e.st.claim(ctx, "w1", "e0", "b-moved", rail.Wompi); err != nil || c.code != "fresh" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if _, err := e.st.transition(ctx, "w1", "e0", "b-moved", []string{stateClaimed}, statePosting); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.transition(ctx, "w1", "e0", "b-moved", []string{statePosting}, statePosted, "payoutId", "p-1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from []string
		to   string
	}{
		{[]string{stateClaimed, stateDeferred}, statePosting},
		{[]string{stateClaimed, stateDeferred, statePosting}, stateRejected},
	} {
		if _, err := e.st.transition(ctx, "w1", "e0", "b-moved", c.from, c.to); !errors.Is(err, errStale) {
			t.Fatalf("move from %v to %s of a posted batch: %v, want errStale", c.from, c.to, err)
		}
	}
	if st := f.redis.Client().HGet(ctx, e.st.batchKey("b-moved"), "state").Val(); st != statePosted {
		t.Fatalf("state %q after refused moves, want %q", st, statePosted)
	}
}
