package localrun

import "testing"

// The local run spreads its undecodable records over the requests. With
// fewer requests than that many records plus one (`payouts-local -n 3`,
// LOCAL_GARBAGE's default of 5) the spacing was zero and the run panicked
// with an integer division by zero after starting the whole stack.
func TestGarbageSpreadWithFewRequests(t *testing.T) {
	for n := range 13 {
		for g := range 7 {
			got := 0
			for i := range n {
				if garbageAfter(i, n, g) {
					got++
				}
			}
			if want := min(g, max(0, n-1)); got != want {
				t.Errorf("%d requests, %d garbage: %d published, want %d", n, g, got, want)
			}
		}
	}
	for i := range 600 {
		if garbageAfter(i, 600, 5) && i%100 != 0 {
			t.Errorf("600 requests: garbage after request %d, want every 100th", i)
		}
	}
}
