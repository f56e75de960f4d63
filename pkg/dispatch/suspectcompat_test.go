package dispatch

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A suspect mark an earlier build wrote (suspectMark followed by the form
// listed, "~?ABC-1") may still sit in the duplicate index when this
// version reads it (entries live the dedupe window). Matched exactly, the
// entry read as another batch's ('d'), and the payee was dropped as
// DUPLICATE_REQUEST, never looked up nor paid. (From a review.)
func TestSuspectMarkWithFormFromEarlierVersionIsStillSuspect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	r := singleRails(t)[1](t)
	e := r.engine(f, nil)
	ctx := context.Background()
	if err := e.st.rdb.Set(ctx, e.st.reqKey("abc-1"), suspectMark+"ABC-1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.claim(ctx, "w", "e0", "b-compat", rail.Wompi); err != nil {
		t.Fatal(err)
	}
	v, news, _, _, err := e.st.dedupe(ctx, "w", "e0", "b-compat", r.name, []string{"abc-1"}, []byte{modeKeep})
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != "k" {
		t.Fatalf("verdict %q for a payee under an earlier version's suspect mark, want k (taken over and looked up): 'd' drops it as another batch's", v)
	}
	if string(news) != string(takenOver) {
		t.Fatalf("new-payee mark %q, want %c (taken over from a mark: a suspect payee is never proven new)", news, takenOver)
	}
}
