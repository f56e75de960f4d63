package cpustat_test

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
)

// The yardstick is only a yardstick while its work stays the same: a
// change to it makes every figure taken beside it incomparable with the
// earlier ones. Its checksum pins the work; change it only with a new name
// for the figure (docs/performance.md compares rounds by it).
func TestYardstickWorkIsFixed(t *testing.T) {
	const want = 44676388820
	for range 2 {
		d, sum := cpustat.Yardstick()
		if sum != want {
			t.Fatalf("yardstick checksum %d, want %d: the yardstick's work changed", sum, want)
		}
		if d <= 0 {
			t.Fatalf("yardstick CPU time %v: the thread's CPU time was not read", d)
		}
	}
}
