package sfptest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The ledger walk of a listing by id returns what filtering and sorting
// the whole ledger returns, for every filter, direction and page
// (including pages past the end, and created_at out of id order, as a
// clock set back gives).
func TestSelectPageMatchesSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for round := range 200 {
		s := &Server{}
		n := rng.IntN(60)
		for i := range n {
			at := base.Add(time.Duration(i*int(time.Minute)) + time.Duration(rng.IntN(3)-1)*time.Hour*time.Duration(round%2))
			s.payouts = append(s.payouts, &payoutRec{seq: int64(i + 1), customerID: []string{"a", "b", "c"}[rng.IntN(3)],
				amount: int64(rng.IntN(5)), createdAt: at, updatedAt: at})
		}
		for range 100 {
			q := listQuery{sortBy: "id", dir: []string{"asc", "desc"}[rng.IntN(2)], page: 1 + rng.IntN(8), limit: 1 + rng.IntN(12)}
			if rng.IntN(2) == 0 {
				q.cust = []string{"a", "b", "x"}[rng.IntN(3)]
			}
			if rng.IntN(2) == 0 {
				q.start = base.Add(time.Duration(rng.IntN(70)-5) * time.Minute)
			}
			if rng.IntN(2) == 0 {
				q.end = base.Add(time.Duration(rng.IntN(70)-5) * time.Minute)
			}
			got, want := s.selectPage(q), s.selectPageSorted(q)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, %+v: walk %v, sorted %v", round, q, seqs(got), seqs(want))
			}
		}
	}
}

func seqs(ps []*payoutRec) []int64 {
	out := make([]int64, len(ps))
	for i, p := range ps {
		out[i] = p.seq
	}
	return out
}
