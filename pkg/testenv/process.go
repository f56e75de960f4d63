package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisProcess is a redis-server child process without persistence,
// listening on 127.0.0.1 only.
type redisProcess struct {
	bin   string
	port  int
	extra []string // more redis-server arguments, e.g. cluster mode
	// keepDir: a restart reuses the last start's directory (a cluster
	// node's nodes.conf survives it; the data does not: no persistence).
	keepDir bool
	dir     string
	conf    []byte // nodes.conf as the last process left it (keepDir)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	out  *lockedBuffer
}

func (p *redisProcess) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// start launches the server and waits until it answers PING.
func (p *redisProcess) start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "testenv-redis-")
	if err != nil {
		return err
	}
	if p.keepDir && p.conf != nil {
		if err := os.WriteFile(filepath.Join(dir, "nodes.conf"), p.conf, 0o600); err != nil {
			return err
		}
	}
	p.dir = dir
	out := &lockedBuffer{}
	cmd := exec.Command(p.bin,
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--loglevel", "warning",
	)
	cmd.Args = append(cmd.Args, p.extra...)
	cmd.Stdout, cmd.Stderr = out, out
	// Kill the server if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan struct{})
	started := make(chan error, 1)
	// PDEATHSIG fires when the *thread* that forked the child exits, so the
	// child is started from a locked thread that lives until the child has
	// exited; the Go runtime never retires it in between.
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
		close(done)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	p.mu.Lock()
	p.cmd, p.done, p.out = cmd, done, out
	p.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: p.addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited early: %s", p.port, bytes.TrimSpace(out.Bytes()))
		case <-deadline.C:
			p.stop()
			return fmt.Errorf("redis-server on port %d not ready after 10s: %s", p.port, bytes.TrimSpace(out.Bytes()))
		case <-ctx.Done():
			p.stop()
			return ctx.Err()
		case <-time.After(15 * time.Millisecond):
		}
		if c.Ping(ctx).Err() == nil {
			return nil
		}
	}
}

// stop terminates the server (SIGTERM, then SIGKILL after 3 s) and waits.
func (p *redisProcess) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// restart stops the server and starts a fresh, empty one on the same port.
func (p *redisProcess) restart(ctx context.Context) error {
	if p.keepDir {
		conf, err := os.ReadFile(filepath.Join(p.dir, "nodes.conf"))
		if err != nil {
			return err
		}
		p.conf = conf
	}
	p.stop()
	var err error
	for range 20 { // the port can linger briefly after the old process exits
		if err = p.start(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return err
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}
