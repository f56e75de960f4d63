package ports

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeNeverRepeatsAndStaysBelowTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		ps, err := Free(4)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			if p < low || p >= ephemeralLow() {
				t.Fatalf("port %d outside [%d, %d)", p, low, ephemeralLow())
			}
		}
	}
}

func TestFreePortIsBindable(t *testing.T) {
	p, err := One()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d not bindable: %v", p, err)
	}
	_ = ln.Close()
}

func TestAPortHeldByAnotherProcessIsSkipped(t *testing.T) {
	p, err := One()
	if err != nil {
		t.Fatal(err)
	}
	// A second claim of the same lock file, as another process would make it,
	// must fail while this process holds it.
	if f, ok := claim(lockDir(), p); ok {
		_ = f.Close()
		t.Fatalf("lock of port %d taken twice", p)
	}
}
