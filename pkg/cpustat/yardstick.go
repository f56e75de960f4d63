package cpustat

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// Yardstick runs a fixed piece of work on one OS thread and returns the CPU
// time that thread spent on it, with a checksum of the work (the same on
// every run and machine; it keeps the compiler from dropping any of it).
//
// The machines this project is measured on differ in speed by a third or
// more from day to day, and within an hour: a figure per request is only
// comparable with another taken beside the same yardstick. The work mixes
// what the pipeline's workers spend their time on: sha256 (event ids),
// number formatting and parsing, copies, map inserts and lookups, and small
// allocations. It takes about 0.07 s of CPU on the machines of
// docs/performance.md. Thread CPU time, not wall time: a run that shares the
// machine with other work reads its own CPU, as the load run's figures do.
func Yardstick() (time.Duration, uint64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	sum := yardstickWork()
	return threadCPU() - start, sum
}

// yardstickWork is Yardstick's work; its result depends on every step.
func yardstickWork() uint64 {
	var sum uint64
	buf := make([]byte, 0, 256)
	m := make(map[string]uint64, 1024)
	for i := range 240_000 {
		buf = strconv.AppendInt(buf[:0], int64(i)*7919, 10)
		buf = append(buf, "|yardstick|"...)
		buf = strconv.AppendInt(buf, int64(i), 36)
		h := sha256.Sum256(buf)
		k := string(h[:12])
		m[k] = uint64(i)
		if len(m) == 4096 {
			for key, v := range m {
				sum += v ^ uint64(len(key))
			}
			clear(m)
		}
		n, err := strconv.ParseInt(string(buf[:5]), 10, 64)
		if err == nil {
			sum += uint64(n)
		}
		cp := append([]byte(nil), h[:]...)
		sum += binary.LittleEndian.Uint64(cp) & 0xffff
	}
	return sum + uint64(len(m))
}

// threadCPU is the calling OS thread's CPU time, user and system; 0 when
// getrusage fails (it does not on Linux).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
