package wompitest

import (
	"context"
	"testing"
)

func TestInjectedFaultsAreCounted(t *testing.T) {
	s := NewTestServer(t, Config{Faults: Faults{ErrorRate: 1}, Seed: 7})
	c := s.Client(nil)
	for range 3 {
		if _, err := c.Banks(context.Background()); err == nil {
			t.Fatal("a 100% error rate let a call through")
		}
	}
	if got := s.InjectedFaults().Errors; got != 3 {
		t.Fatalf("InjectedFaults().Errors = %d, want 3", got)
	}
}
