// Package cpustat reads CPU time used so far: this process's (getrusage)
// and a redis-server's (INFO cpu). The load run and the Redis benchmarks
// take two readings and divide the difference by the work done between.
package cpustat

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Self is this process's CPU time so far, user and system, all threads.
// It is 0 when getrusage fails (it does not on Linux).
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Redis is used_cpu_sys + used_cpu_user of the server's INFO cpu: the whole
// server's, so a Redis shared with other work counts that work too.
func Redis(ctx context.Context, c redis.Cmdable) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("cpustat: INFO cpu: %w", err)
	}
	return parseInfoCPU(info)
}

// parseInfoCPU adds up used_cpu_sys and used_cpu_user of an INFO cpu
// answer; it refuses an answer missing either or holding a bad number.
func parseInfoCPU(info string) (time.Duration, error) {
	var sum float64
	found := 0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("cpustat: INFO cpu %s: %w", k, err)
		}
		sum += f
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("cpustat: INFO cpu lacks used_cpu_sys or used_cpu_user")
	}
	return time.Duration(sum * float64(time.Second)), nil
}
