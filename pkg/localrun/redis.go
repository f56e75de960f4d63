package localrun

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Redis is the Redis the local run chose.
type Redis struct {
	Kind  string // "REDIS_URL", "redis-server" or "miniredis"
	Addr  string
	URL   string
	close func()
}

// Close stops a Redis the run started.
func (r *Redis) Close() {
	if r.close != nil {
		r.close()
	}
}

// Client returns a new go-redis client on it.
func (r *Redis) Client() (*redis.Client, error) {
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

// StartRedis picks a Redis: REDIS_URL when set, else a redis-server found
// on PATH started on a free loopback port without persistence, else an
// embedded miniredis (which is not Redis: fine to try the pipeline, never
// for production). allowEmbedded false makes the last case an error.
func StartRedis(ctx context.Context, url string, allowEmbedded bool) (*Redis, error) {
	if url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %v", err)
		}
		return &Redis{Kind: "REDIS_URL", Addr: opts.Addr, URL: url}, nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		r, err := startServer(ctx, bin)
		if err == nil {
			return r, nil
		}
		if !allowEmbedded {
			return nil, err
		}
	}
	if !allowEmbedded {
		return nil, fmt.Errorf("no REDIS_URL and no redis-server on PATH")
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, err
	}
	return &Redis{Kind: "miniredis", Addr: m.Addr(), URL: "redis://" + m.Addr(), close: m.Close}, nil
}

func startServer(ctx context.Context, bin string) (*Redis, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "payouts-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server on %s did not answer within 5s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Redis{Kind: "redis-server", Addr: addr, URL: "redis://" + addr, close: stop}, nil
}
