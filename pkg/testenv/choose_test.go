package testenv

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

func fakeEnv(env map[string]string, bins map[string]string, docker bool) redisEnv {
	return redisEnv{
		getenv: func(k string) string { return env[k] },
		lookPath: func(name string) (string, error) {
			if p, ok := bins[name]; ok {
				return p, nil
			}
			return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
		},
		docker: func() bool { return docker },
	}
}

func TestRedisChoice(t *testing.T) {
	const url = "redis://10.0.0.1:6380/2"
	bin := map[string]string{"redis-server": "/usr/bin/redis-server"}
	tests := []struct {
		name    string
		env     map[string]string
		bins    map[string]string
		docker  bool
		own     bool
		want    redisChoice
		wantErr bool
	}{
		{name: "url wins over all", env: map[string]string{"REDIS_URL": url}, bins: bin, docker: true, want: redisChoice{RedisExternal, url}},
		{name: "docker before binary", bins: bin, docker: true, want: redisChoice{kind: RedisContainer}},
		{name: "binary from PATH", bins: bin, want: redisChoice{RedisProcess, "/usr/bin/redis-server"}},
		{name: "REDIS_SERVER_BIN override", env: map[string]string{"REDIS_SERVER_BIN": "/opt/redis7"}, bins: map[string]string{"/opt/redis7": "/opt/redis7"}, want: redisChoice{RedisProcess, "/opt/redis7"}},
		{name: "REDIS_SERVER_BIN missing is not replaced by PATH", env: map[string]string{"REDIS_SERVER_BIN": "/nope"}, bins: bin, wantErr: true},
		{name: "nothing", wantErr: true},
		{name: "own ignores url, takes binary", env: map[string]string{"REDIS_URL": url}, bins: bin, docker: true, own: true, want: redisChoice{RedisProcess, "/usr/bin/redis-server"}},
		{name: "own falls back to docker", env: map[string]string{"REDIS_URL": url}, docker: true, own: true, want: redisChoice{kind: RedisContainer}},
		{name: "own with only url", env: map[string]string{"REDIS_URL": url}, own: true, wantErr: true},
		{name: "blank url ignored", env: map[string]string{"REDIS_URL": "  "}, bins: bin, want: redisChoice{RedisProcess, "/usr/bin/redis-server"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fakeEnv(tc.env, tc.bins, tc.docker).choose(tc.own)
			if tc.wantErr {
				if !errors.Is(err, errNoRealRedis) {
					t.Fatalf("choose = %+v, %v; want errNoRealRedis", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("choose = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// recorder is a testing.TB that records Fatalf and Skipf instead of stopping
// the goroutine, so the decision itself can be asserted.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recorder) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...) }

func TestNoRealRedisSkipsOrFails(t *testing.T) {
	tests := []struct {
		require  string
		wantFail bool
	}{
		{"", false}, {"0", false}, {"false", false},
		{"1", true}, {"true", true}, {"TRUE", true}, {"yes", true},
	}
	for _, tc := range tests {
		t.Run("require="+tc.require, func(t *testing.T) {
			env := fakeEnv(map[string]string{EnvRequireRealRedis: tc.require}, nil, false)
			_, err := env.choose(false)
			if err == nil {
				t.Fatal("fake environment unexpectedly has Redis")
			}
			r := &recorder{TB: t}
			unavailable(r, env.getenv, err)
			if tc.wantFail {
				if r.fatal == "" || r.skip != "" {
					t.Fatalf("want failure; fatal=%q skip=%q", r.fatal, r.skip)
				}
				if !strings.Contains(r.fatal, "TEST_REQUIRE_REAL_REDIS") || !strings.Contains(r.fatal, "redis-server") {
					t.Errorf("failure message does not explain itself: %q", r.fatal)
				}
			} else {
				if r.skip == "" || r.fatal != "" {
					t.Fatalf("want skip; fatal=%q skip=%q", r.fatal, r.skip)
				}
				if !strings.Contains(r.skip, "TEST_REQUIRE_REAL_REDIS=1") {
					t.Errorf("skip message does not say how to require Redis: %q", r.skip)
				}
			}
		})
	}
}

func TestFreePort(t *testing.T) {
	a, err := FreePort()
	if err != nil || a <= 0 || a > 65535 {
		t.Fatalf("FreePort = %d, %v", a, err)
	}
}

func TestUniqueName(t *testing.T) {
	a := uniqueName("base", "TestX/sub case", 249, '.', isTopicChar)
	b := uniqueName("base", "TestX/sub case", 249, '.', isTopicChar)
	if a == b {
		t.Fatalf("uniqueName repeated %q", a)
	}
	if !strings.HasPrefix(a, "base.TestX_sub_case.") {
		t.Fatalf("uniqueName = %q", a)
	}
}
