package track

import (
	"os"
	"testing"
)

// TestMain turns the loss grace off for the tests of everything else: each
// test starts on a new epoch marker, which the grace would hold for
// DefaultLossGrace. The tests of the grace set it on their store or gate.
func TestMain(m *testing.M) {
	defaultLossGrace = 0
	os.Exit(m.Run())
}
