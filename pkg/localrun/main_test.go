package localrun

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for payouts-local: the load run
// re-executes itself (os.Executable) with RoleFlag to start its kfake and
// simulator children.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == RoleFlag {
		os.Exit(RunRole(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}
