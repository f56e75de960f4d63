package localrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// LoadLimitCents is the daily limit and balance of every account in a
// load run: $10,000,000,000,000.00, so no batch is deferred.
const LoadLimitCents int64 = 1e15

// RoleFlag is the hidden flag with which payouts-local re-executes itself
// as a child process: the load run keeps Kafka and the simulator out of the
// workers' process, so that the peak RSS it reports is the pipeline's.
const RoleFlag = "--localrun-role"

// RunLoad is the load run: Kafka and the simulators run in child
// processes, every request is an immediate payout through o.Rail (Wompi by
// default; see LoadMixFor, which also sets o.Mix), and the report adds
// throughput, Redis round trips per batch, CPU per request of the workers,
// Redis and each child, latency percentiles, peak RSS and the ratio to a
// raw franz-go consume of the same topic. An unknown rail is
// ErrUnknownRail, before anything starts.
func RunLoad(ctx context.Context, o Options) (*Report, error) {
	mix, err := LoadMixFor(o.Rail)
	if err != nil {
		return nil, err
	}
	if o.Rail == "" {
		o.Rail = string(rail.Wompi)
	}
	o.Mix, o.Load = mix, true
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	partitions := o.Partitions
	if partitions <= 0 {
		partitions = 6
	}
	o.Partitions = partitions
	var kafka *exec.Cmd
	if !o.ExternalKafka {
		var brokers string
		kafka, brokers, err = startChild(ctx, self, "kfake", strconv.Itoa(partitions))
		if err != nil {
			return nil, fmt.Errorf("kfake child: %w", err)
		}
		defer stopChild(kafka)
		o.KafkaBrokers, o.kafkaChild = strings.Split(brokers, ","), true
		o.children = append(o.children, child{"kfake", kafka})
	}
	// The Wompi simulator runs in every mode: the dispatcher requires
	// Wompi, and on a single-payout rail its ledger shows that nothing was
	// paid through Wompi.
	sim, simURL, err := startChild(ctx, self, "wompisim", strconv.FormatUint(o.Seed, 10))
	if err != nil {
		return nil, fmt.Errorf("simulator child: %w", err)
	}
	defer stopChild(sim)
	o.SimURL = simURL
	o.children = append(o.children, child{"wompisim", sim})
	if role, url := singleSimRole(rail.Name(o.Rail)); role != "" {
		c, u, err := startChild(ctx, self, role, strconv.FormatUint(o.Seed, 10))
		if err != nil {
			return nil, fmt.Errorf("%s child: %w", role, err)
		}
		defer stopChild(c)
		*url(&o) = u
		o.children = append(o.children, child{role, c})
	}
	rep, err := Run(ctx, o)
	if rep != nil && rep.Load != nil {
		rep.Load.ChildRSS = map[string]int64{}
		for _, c := range o.children {
			rep.Load.ChildRSS[c.role] = childRSS(c.cmd)
		}
	}
	return rep, err
}

// singleSimRole names the child role of a single-payout rail's simulator
// and the option that takes its URL; "" for Wompi.
func singleSimRole(name rail.Name) (string, func(*Options) *string) {
	switch name {
	case rail.SmartFastPay:
		return "smartfastpaysim", func(o *Options) *string { return &o.SmartFastPayURL }
	case rail.WEpayout:
		return "wepayoutsim", func(o *Options) *string { return &o.WEpayoutURL }
	}
	return "", nil
}

// workersOnly are the Go runtime's memory settings: given to the load run,
// they are the workers' (GOMEMLIMIT=240MiB payouts-local --load measures
// the workers as deployed with a soft memory limit), not the harness
// children's (Kafka, the simulators), whose memory is not the pipeline's.
var workersOnly = []string{"GOMEMLIMIT=", "GOGC="}

// childEnv is env without workersOnly.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !slices.ContainsFunc(workersOnly, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			out = append(out, kv)
		}
	}
	return out
}

func startChild(ctx context.Context, self, role, arg string) (*exec.Cmd, string, error) {
	cmd := exec.CommandContext(ctx, self, RoleFlag, role, arg)
	cmd.Env = childEnv(os.Environ())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			cmd.Process.Kill()
			return nil, "", fmt.Errorf("%s exited before it was ready", role)
		}
		return cmd, l, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, "", fmt.Errorf("%s not ready within 30s", role)
	}
}

func stopChild(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
	}
}

// childRSS reads a live child's peak RSS (VmHWM) from /proc.
func childRSS(cmd *exec.Cmd) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// ChildProfileEnv names a directory: when it is set, each child of the load
// run writes a CPU profile of itself there (<role>.cpu.prof), for the CPU
// split's per-process profiles.
const ChildProfileEnv = "LOCAL_CHILD_CPUPROFILE_DIR"

// RunRole runs a child role of the load run and returns its exit code: it
// prints one ready line (the brokers, or the simulator's base URL) and
// serves until SIGTERM.
func RunRole(role string, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if dir := os.Getenv(ChildProfileEnv); dir != "" {
		f, err := os.Create(filepath.Join(dir, role+".cpu.prof"))
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, role+": cpu profile:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	switch role {
	case "kfake":
		partitions, _ := strconv.Atoi(first(args))
		t := events.DefaultTopics()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(max(1, partitions)),
			kfake.SeedTopics(int32(max(1, partitions)), t.Requests, t.Batches, t.BatchesDeferred, t.Status, t.BatchStatus, t.RequestsDLQ, t.DispatcherStarts))
		if err != nil {
			fmt.Fprintln(os.Stderr, "kfake:", err)
			return 1
		}
		defer c.Close()
		if err := keepStartRecords(ctx, c.ListenAddrs(), t.DispatcherStarts); err != nil {
			fmt.Fprintln(os.Stderr, "kfake:", err)
			return 1
		}
		if err := setRetention(ctx, c.ListenAddrs(), t.Status, statusRetention); err != nil {
			fmt.Fprintln(os.Stderr, "kfake:", err)
			return 1
		}
		fmt.Println(strings.Join(c.ListenAddrs(), ","))
	case "wompisim":
		seed, _ := strconv.ParseUint(first(args), 10, 64)
		// Transactions settle after the run: the load run measures up to
		// SUBMITTED, and 1,000,000 settlements would only add webhook load.
		// A load run moves far more money than one client's day allows
		// ($1.5B): the accounts get limits and balances that never bind, so
		// the run measures throughput, not deferral.
		accounts := wompitest.DefaultAccounts()
		for i := range accounts {
			accounts[i].DailyLimitInCents, accounts[i].BalanceInCents = LoadLimitCents, LoadLimitCents
		}
		sim, err := wompitest.New(wompitest.Config{Seed: seed + 1, SettleDelay: time.Hour, SettleJitter: -1,
			Accounts: accounts, ClientDailyLimitInCents: LoadLimitCents, PublishedOnly: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "wompisim:", err)
			return 1
		}
		if err := sim.Start("127.0.0.1:0"); err != nil {
			fmt.Fprintln(os.Stderr, "wompisim:", err)
			return 1
		}
		defer sim.Close()
		fmt.Println(sim.BaseURL())
	case "smartfastpaysim", "wepayoutsim":
		// Payouts move after the run (an hour per step): the load run
		// measures up to SUBMITTED. The balance never binds.
		seed, _ := strconv.ParseUint(first(args), 10, 64)
		var sim singleSim
		var err error
		if role == "smartfastpaysim" {
			sim, err = sfptest.New(sfptest.Config{Seed: seed + 2, StepDelay: time.Hour, ReversalDelay: time.Hour,
				BalanceInCents: LoadLimitCents, Logger: slog.New(slog.DiscardHandler)})
		} else {
			sim, err = weptest.New(weptest.Config{Seed: seed + 3, StepDelay: time.Hour, StepJitter: -1,
				BalanceInCents: LoadLimitCents, Logger: slog.New(slog.DiscardHandler)})
		}
		if err == nil {
			err = sim.Start("127.0.0.1:0")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, role+":", err)
			return 1
		}
		defer sim.Close()
		fmt.Println(sim.URL())
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	<-ctx.Done()
	return 0
}

// singleSim is what the load run needs of a single-payout rail's simulator.
type singleSim interface {
	Start(addr string) error
	URL() string
	Close() error
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
