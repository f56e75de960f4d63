package wompi_test

import (
	"context"
	"testing"
)

// TestFindPayoutsByReferenceKeepsOursOnly: the lookup after a lost answer
// or EXC_022 keeps the batches whose reference is ours exactly, whatever
// the listing answers (a filter Wompi ignores, or matches by prefix).
// Another batch adopted as ours would hand its payout id to our batch,
// whose payees were never posted.
func TestFindPayoutsByReferenceKeepsOursOnly(t *testing.T) {
	c := pagesServer(t, map[string]string{"1": payoutsPage(1, 1, 3, "a", "ab", "b")}) // references r-a, r-ab, r-b
	got, err := c.FindPayoutsByReference(context.Background(), "r-a")
	if err != nil || len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("found %+v, %v under r-a: want the batch a alone", got, err)
	}
	got, err = c.FindPayoutsByReference(context.Background(), "r-c")
	if err != nil || len(got) != 0 {
		t.Fatalf("found %+v, %v under r-c: want none", got, err)
	}
}
