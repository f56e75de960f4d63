// Package ports hands out loopback TCP ports for the servers a test starts,
// stops and starts again: Redis, Kafka brokers, simulators and workers.
//
// Asking the kernel for port 0 and closing the listener is not enough for a
// server that is killed and restarted. While it is down, two things can take
// its port: the next "port 0" asked in the same test, and the local end of any
// outgoing connection, which the kernel picks from the same ephemeral range.
// The restarted server then fails to bind, or worse, a request meant for it
// reaches another server. So the ports come from below the ephemeral range,
// a port is handed out at most once per process, and a lock file keeps other
// test processes on the machine off a port this one holds.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// low is the first port handed out; ports below it are left to well-known
// services.
const low = 15000

var state struct {
	mu    sync.Mutex
	given map[int]bool
	locks []*os.File // held open for the life of the process
}

// Free returns n distinct ports on 127.0.0.1 that were free when asked and
// that no other caller in this process, nor any other process using this
// package, is given while this process lives.
func Free(n int) ([]int, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.given == nil {
		state.given = map[int]bool{}
	}
	high := ephemeralLow()
	if high-low < 1000 {
		return kernelPorts(n)
	}
	dir := lockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 20000 {
			return nil, errors.New("ports: no free port below the ephemeral range")
		}
		p := low + rand.IntN(high-low)
		if state.given[p] {
			continue
		}
		lock, ok := claim(dir, p)
		if !ok {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			_ = lock.Close()
			continue
		}
		_ = ln.Close()
		state.given[p] = true
		state.locks = append(state.locks, lock)
		out = append(out, p)
	}
	return out, nil
}

// One returns a single port from [Free].
func One() (int, error) {
	ps, err := Free(1)
	if err != nil {
		return 0, err
	}
	return ps[0], nil
}

func lockDir() string { return filepath.Join(os.TempDir(), "payouts-test-ports") }

// claim takes the lock file of port p, or reports that another process holds it.
func claim(dir string, p int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false
	}
	return f, true
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	v, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return v
}

// kernelPorts is the fallback on a machine whose ephemeral range starts too
// low to leave room below it: distinct ports the kernel picks.
func kernelPorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("ports: %w", err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if state.given[p] {
			continue
		}
		state.given[p] = true
		out = append(out, p)
	}
	return out, nil
}
