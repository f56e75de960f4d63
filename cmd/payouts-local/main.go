// Command payouts-local runs the whole payout pipeline in one process on
// embedded defaults: an in-process Kafka (kfake), a Redis (REDIS_URL, else
// redis-server from PATH, else embedded miniredis), the Wompi simulator,
// ingest, dispatcher and tracker, and a synthetic marketplace. It ends with
// a reconciliation table and exits 0 only if nothing was paid twice and
// nothing was lost.
//
//	go run ./cmd/payouts-local            # 10,000 requests
//	go run ./cmd/payouts-local -n 50000   # more
//	go run ./cmd/payouts-local --serve    # keep the sandbox up for trying the workers by hand
//	go run ./cmd/payouts-local --load     # the 1,000,000-request load run of docs/performance.md
//	go run ./cmd/payouts-local --load --rail smartfastpay -n 100000   # the load run on one single-payout rail (or wepayout)
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./cmd/payouts-local --load   # the same on a real Kafka (go run ./cmd/kafkabroker)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/localrun"
	"github.com/wompi-payouts/pipeline/pkg/ops"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == localrun.RoleFlag {
		os.Exit(localrun.RunRole(os.Args[2], os.Args[3:]))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var (
		n, garbage          int
		seed                int64
		serve, load, noMini bool
		timeout             time.Duration
		redisURL, logPath   string
		railName            string
		kafkaBrokers        string
		cpuProfile, memProf string
		loadJSON            string
	)
	set := config.New("payouts-local", os.LookupEnv)
	set.Int(&n, "n", "LOCAL_REQUESTS", 10000, "payout requests the synthetic marketplace publishes (--load: default 1,000,000)")
	set.Int(&garbage, "garbage", "LOCAL_GARBAGE", 5, "undecodable records also published, to show the DLQ")
	set.Int64(&seed, "seed", "LOCAL_SEED", 1, "seed of the marketplace and the simulator")
	set.Bool(&serve, "serve", "LOCAL_SERVE", false, "keep the stack up after the run (with -n 0: only serve), printing its addresses")
	set.Bool(&load, "load", "LOCAL_LOAD", false, "load run: immediate payouts only, Kafka and the simulator in child processes, throughput report")
	set.String(&railName, "rail", "LOCAL_RAIL", "", "with --load: the rail every request goes to: wompi (the default), smartfastpay or wepayout")
	set.Bool(&noMini, "require-redis", "LOCAL_REQUIRE_REDIS", false, "fail instead of falling back to embedded miniredis")
	set.Duration(&timeout, "timeout", "LOCAL_TIMEOUT", 5*time.Minute, "how long to wait for every request to settle")
	set.String(&redisURL, "redis-url", "REDIS_URL", "", "use this Redis instead of starting one")
	set.String(&kafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "", "use this Kafka cluster (host:port,...) instead of an embedded kfake; the topics are created there when missing")
	set.String(&logPath, "log-file", "LOCAL_LOG_FILE", filepath.Join(os.TempDir(), "payouts-local.log"), "where the workers' logs go")
	set.String(&cpuProfile, "cpuprofile", "LOCAL_CPUPROFILE", "", "write a CPU profile of the workers' process to this file (go tool pprof)")
	set.String(&memProf, "memprofile", "LOCAL_MEMPROFILE", "", "write a heap profile of the workers' process, taken when its live heap peaks, to this file")
	set.String(&loadJSON, "load-json", "LOCAL_LOAD_JSON", "", "with --load: also write the load run's figures as one JSON object to this file")
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if loadJSON != "" && !load {
		fmt.Fprintln(os.Stderr, "config: LOCAL_LOAD_JSON/--load-json: needs --load")
		return 2
	}
	if railName != "" {
		if !load {
			fmt.Fprintln(os.Stderr, "config: LOCAL_RAIL/--rail: needs --load")
			return 2
		}
		if _, err := localrun.LoadMixFor(railName); err != nil {
			fmt.Fprintln(os.Stderr, "config: LOCAL_RAIL/--rail:", err)
			return 2
		}
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "config: LOCAL_LOG_FILE:", err)
		return 2
	}
	defer logFile.Close()
	ctx, stop := ops.SignalContext()
	defer stop()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "config: LOCAL_CPUPROFILE:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	if memProf != "" {
		stopProf := peakHeapProfile(ctx, memProf)
		defer stopProf()
	}

	o := localrun.Options{
		Requests: n, Garbage: garbage, Seed: uint64(seed), Mix: localrun.DefaultMix, RedisURL: redisURL,
		AllowEmbeddedRedis: !noMini, Timeout: timeout, Serve: serve, Out: os.Stdout, Log: logFile,
		Terminal: isTerminal(os.Stdout),
	}
	if kafkaBrokers != "" {
		for _, b := range strings.Split(kafkaBrokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				o.KafkaBrokers = append(o.KafkaBrokers, b)
			}
		}
		o.ExternalKafka = len(o.KafkaBrokers) > 0
	}
	if load {
		if !isSet(args, "n") && os.Getenv("LOCAL_REQUESTS") == "" {
			o.Requests = 1_000_000
		}
		o.Mix, o.Load, o.Garbage, o.Rail = localrun.LoadMix, true, 0, railName
	}
	fmt.Printf("payouts-local: %d requests, seed %d; worker logs in %s\n", o.Requests, seed, logPath)
	if load && railName != "" {
		fmt.Printf("payouts-local: load run on the %s rail\n", railName)
	}
	var report *localrun.Report
	if load {
		report, err = localrun.RunLoad(ctx, o)
	} else {
		report, err = localrun.Run(ctx, o)
	}
	if report != nil {
		report.Print(os.Stdout)
		if loadJSON != "" && report.Load != nil {
			if werr := writeLoadJSON(loadJSON, report); werr != nil {
				fmt.Fprintln(os.Stderr, "payouts-local: LOCAL_LOAD_JSON:", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "payouts-local:", err)
		return 1
	}
	if report != nil && !report.OK() {
		return 1
	}
	return 0
}

// writeLoadJSON writes the load run's figures as JSON to path.
func writeLoadJSON(path string, report *localrun.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.WriteLoadJSON(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func isSet(args []string, name string) bool {
	for _, a := range args {
		if a == "-"+name || a == "--"+name || len(a) > len(name)+2 && (a[:len(name)+2] == "-"+name+"=" || a[:len(name)+3] == "--"+name+"=") {
			return true
		}
	}
	return false
}

// peakHeapProfile samples the live heap every 250 ms and, each time it
// reaches a new peak, writes a heap profile to path: what the profile shows
// is what the process held at its peak.
func peakHeapProfile(ctx context.Context, path string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak+peak/20 {
				peak = v
				if f, err := os.Create(path); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
