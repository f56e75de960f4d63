// Package chaos is the system-level proof of our first promise: no payee is
// paid twice and no request is lost, under crashes, faults and bad input.
//
// It runs the real binaries as separate OS processes (so SIGKILL is real):
// a three-node Apache Kafka cluster (when TEST_KAFKA=real or
// TEST_REQUIRE_REAL_KAFKA=1, as in CI; its partition leaders are SIGKILLed
// and a broker restarted mid-run) or else a standalone Kafka-protocol
// broker (cmd/kfakebroker), a real redis-server,
// the Wompi simulator (cmd/wompisim) and two replicas of each worker, with
// the tracker replicas behind a round-robin load balancer. A seeded schedule
// SIGKILLs and restarts workers, the simulator injects 5xx errors, latency,
// lost answers and duplicated, reordered and dropped webhooks, Redis is
// flushed twice in a row (the second while the recovery of the first
// runs), a share of requests is published twice (some under another origin
// account), POSTs meet an API-key outage longer than the idempotency key's
// lifetime (scaled down to seconds) and late validation failures after lost
// answers. The oracle is
// the simulator's audit ledger plus the status topic.
package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv/ports"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Secrets the processes share; the log audit checks none of them leaks.
const (
	APIKey       = "chaos-api-key-5f3b1c"
	PrincipalID  = "chaos-principal-9a7e"
	EventsSecret = "chaos-events-secret-c41d8e"
)

// The idempotency key's lifetime, scaled down: the workers run on the wall
// clock, so Wompi's 24 h (and the dispatcher's 23 h limit) become seconds,
// and an API-key outage of a minute outlives a key.
// The single-payout rails' simulator credentials (fake).
const (
	SmartFastPayClientID      = "chaos-sfp-client"
	SmartFastPayClientSecret  = "chaos-sfp-secret"
	SmartFastPayWebhookSecret = "chaos-sfp-webhook-secret"
	WEpayoutAPIKey            = "chaos-wepayout-key"
)

const (
	IdempotencyTTL = 20 * time.Second
	KeyMaxAge      = 10 * time.Second
)

// Build compiles the binaries the suite runs into dir.
func Build(ctx context.Context, repoRoot, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator),
		"./cmd/ingest", "./cmd/dispatcher", "./cmd/tracker", "./cmd/wompisim", "./cmd/kfakebroker",
		"./cmd/smartfastpaysim", "./cmd/wepayoutsim")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// Proc is one OS process of the suite.
type Proc struct {
	Name string
	bin  string
	env  []string
	log  *os.File

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	Restarts int
}

func newProc(name, bin string, env map[string]string, logDir string) (*Proc, error) {
	f, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: name, bin: bin, log: f}
	p.env = append(p.env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	for k, v := range env {
		p.env = append(p.env, k+"="+v)
	}
	return p, nil
}

// Start starts the process (again).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Stop sends SIGTERM and waits up to grace, then kills.
func (p *Proc) Stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Signal sends sig to the process, if it runs.
func (p *Proc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// Alive reports whether the process runs.
func (p *Proc) Alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Cluster is the set of processes of one run.
type Cluster struct {
	Dir       string
	Brokers   []string
	RedisAddr string
	redisURL  string   // what the workers get in REDIS_URL
	redisAll  []string // every Redis server, flushed by FlushRedis
	SimRoot   string   // http://host:port, without /v1
	// The single-payout rails' simulators: http://host:port.
	SmartFastPayRoot, WEpayoutRoot string
	Workers                        []*Proc
	infra                          []*Proc
	lb                             *http.Server
	LBAddr                         string
	lbFails                        atomic.Int64
}

// Options of a cluster.
type Options struct {
	BinDir, LogDir string
	Partitions     int
	Seed           uint64
	// Replicas of each worker; default 2.
	Replicas int
	// KafkaDebug runs the workers at LOG_LEVEL=debug, which adds
	// franz-go's info lines (joins, assignments, offset fetches,
	// transaction ends) to their logs.
	KafkaDebug bool
	// NoReaper runs the broker without its session reaper
	// (KFAKE_SESSION_REAPER=false): members killed mid-join may then hold
	// partitions for good, as kfake's own timer misses them (see
	// pkg/kfakereaper). Only for reproducing that.
	NoReaper bool
	// Brokers of a Kafka cluster started by the caller (a real Apache
	// Kafka, see pkg/testenv). Empty: the cluster starts its own
	// kfakebroker. StartCluster creates the topics on it, Partitions each,
	// at the broker's default replication factor.
	Brokers []string
	// RedisCluster is a three-master Redis Cluster started by the caller
	// (pkg/testenv): its URL in the workers' REDIS_URL cluster form and
	// its masters, each flushed by FlushRedis. Nil: the cluster starts
	// one redis-server of its own.
	RedisCluster *RedisClusterSpec
}

// RedisClusterSpec names an external Redis Cluster.
type RedisClusterSpec struct {
	URL     string
	Masters []string
}

// Topics are the topics the workers use, created by StartCluster.
var Topics = []string{"payouts.requests.v1", "payouts.batches.v1", "payouts.batches.deferred.v1", "payouts.status.v1", "payouts.batch-status.v1", "payouts.requests.dlq.v1",
	"payouts.dispatcher.starts.v1"}

// StartCluster starts the broker, Redis, the simulator and the workers.
func StartCluster(ctx context.Context, o Options) (*Cluster, error) {
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	c := &Cluster{Dir: o.LogDir}
	logLevel := "info"
	if o.KafkaDebug {
		logLevel = "debug"
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	if len(o.Brokers) > 0 {
		// A real cluster, the caller's: its brokers are killed by the
		// caller, never by Close.
		c.Brokers = o.Brokers
		if err := createTopics(ctx, o.Brokers, o.Partitions); err != nil {
			return nil, err
		}
	} else {
		// The broker: its own process, never killed (it is the cluster).
		broker, err := c.startBroker(ctx, o)
		if err != nil {
			return nil, err
		}
		c.infra = append(c.infra, broker)
	}

	// Redis.
	if rc := o.RedisCluster; rc != nil {
		c.RedisAddr, c.redisURL, c.redisAll = rc.Masters[0], rc.URL, rc.Masters
		// The caller's cluster may hold an earlier seed's keys.
		if err := c.FlushRedis(ctx); err != nil {
			return nil, fmt.Errorf("redis cluster: %w", err)
		}
	} else {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.RedisAddr = "127.0.0.1:" + strconv.Itoa(port)
		c.redisURL, c.redisAll = "redis://"+c.RedisAddr, []string{c.RedisAddr}
		redisProc, err := newProc("redis", "redis-server", nil, o.LogDir)
		if err != nil {
			return nil, err
		}
		redisProc.bin = mustLookPath("redis-server")
		if err := startWithArgs(redisProc, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", o.LogDir); err != nil {
			return nil, err
		}
		c.infra = append(c.infra, redisProc)
		if err := waitTCP(ctx, c.RedisAddr); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
	}

	// The load balancer in front of the trackers.
	trackerAddrs := make([]string, o.Replicas)
	for i := range trackerAddrs {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		trackerAddrs[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	if err := c.startLB(trackerAddrs); err != nil {
		return nil, err
	}

	// The simulator.
	simPort, err := freePort()
	if err != nil {
		return nil, err
	}
	c.SimRoot = "http://127.0.0.1:" + strconv.Itoa(simPort)
	sim, err := newProc("wompisim", filepath.Join(o.BinDir, "wompisim"), map[string]string{
		"WOMPISIM_ADDR": "127.0.0.1:" + strconv.Itoa(simPort), "WOMPI_API_KEY": APIKey, "WOMPI_PRINCIPAL_ID": PrincipalID,
		"WOMPI_EVENTS_SECRET": EventsSecret, "WEBHOOK_URL": "http://" + c.LBAddr + "/webhooks/wompi",
		"WOMPISIM_SEED": strconv.FormatUint(o.Seed, 10), "WOMPISIM_SETTLE_DELAY": "300ms", "WOMPISIM_SETTLE_JITTER": "700ms",
		"WOMPISIM_WEBHOOK_BACKOFF": "100ms", "WOMPISIM_WEBHOOK_DELAY": "500ms",
		"WOMPISIM_IDEMPOTENCY_TTL": IdempotencyTTL.String(),
		// Only what Wompi publishes: the pipeline must not lean on the
		// simulator's [ours] extras (issue #17).
		"WOMPISIM_PUBLISHED_ONLY": "true",
	}, o.LogDir)
	if err != nil {
		return nil, err
	}
	if err := sim.Start(); err != nil {
		return nil, err
	}
	c.infra = append(c.infra, sim)
	if err := waitTCP(ctx, "127.0.0.1:"+strconv.Itoa(simPort)); err != nil {
		return nil, fmt.Errorf("wompisim: %w", err)
	}

	// The single-payout rails' simulators, with their faults on from the
	// start (the Wompi simulator's come through SetFaults).
	railFaults := func(prefix string) map[string]string {
		return map[string]string{
			prefix + "_SEED": strconv.FormatUint(o.Seed, 10), prefix + "_STEP_DELAY": "300ms",
			prefix + "_ERROR_RATE": "0.05", prefix + "_LATENCY": "2ms", prefix + "_LATENCY_JITTER": "20ms",
			prefix + "_DROP_RESPONSE_RATE": "0.05", prefix + "_WEBHOOK_DROP_RATE": "0.05",
			prefix + "_WEBHOOK_DUPLICATE_RATE": "0.05", prefix + "_WEBHOOK_DELAY_RATE": "0.05", prefix + "_WEBHOOK_DELAY": "1s",
			prefix + "_WEBHOOK_BACKOFF": "100ms", prefix + "_LOG_FORMAT": "json",
		}
	}
	for _, rs := range []struct {
		name, prefix string
		root         *string
		extra        map[string]string
	}{
		{"smartfastpaysim", "SMARTFASTPAYSIM", &c.SmartFastPayRoot, map[string]string{"SMARTFASTPAYSIM_REVERSAL_DELAY": "1s",
			"SMARTFASTPAY_CLIENT_ID": SmartFastPayClientID, "SMARTFASTPAY_CLIENT_SECRET": SmartFastPayClientSecret,
			"SMARTFASTPAY_WEBHOOK_SECRET": SmartFastPayWebhookSecret}},
		{"wepayoutsim", "WEPAYOUTSIM", &c.WEpayoutRoot, map[string]string{"WEPAYOUTSIM_STEP_JITTER": "300ms",
			"WEPAYOUT_API_KEY": WEpayoutAPIKey}},
	} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		env := railFaults(rs.prefix)
		env[rs.prefix+"_ADDR"] = "127.0.0.1:" + strconv.Itoa(port)
		for k, v := range rs.extra {
			env[k] = v
		}
		p, err := newProc(rs.name, filepath.Join(o.BinDir, rs.name), env, o.LogDir)
		if err != nil {
			return nil, err
		}
		if err := p.Start(); err != nil {
			return nil, err
		}
		c.infra = append(c.infra, p)
		if err := waitTCP(ctx, "127.0.0.1:"+strconv.Itoa(port)); err != nil {
			return nil, fmt.Errorf("%s: %w", rs.name, err)
		}
		*rs.root = "http://127.0.0.1:" + strconv.Itoa(port)
	}

	common := map[string]string{
		"SMARTFASTPAY_BASE_URL": c.SmartFastPayRoot, "SMARTFASTPAY_CLIENT_ID": SmartFastPayClientID,
		"SMARTFASTPAY_CLIENT_SECRET": SmartFastPayClientSecret, "SMARTFASTPAY_WEBHOOK_SECRET": SmartFastPayWebhookSecret,
		"SMARTFASTPAY_CALLBACK_URL": "http://" + c.LBAddr + "/webhooks/smartfastpay",
		"WEPAYOUT_BASE_URL":         c.WEpayoutRoot, "WEPAYOUT_API_KEY": WEpayoutAPIKey,
		"WEPAYOUT_NOTIFICATION_URL": "http://" + c.LBAddr + "/webhooks/wepayout",
		"KAFKA_BROKERS":             strings.Join(c.Brokers, ","), "REDIS_URL": c.redisURL,
		"WOMPI_BASE_URL": c.SimRoot + "/v1", "WOMPI_API_KEY": APIKey, "WOMPI_PRINCIPAL_ID": PrincipalID,
		"WOMPI_EVENTS_SECRET": EventsSecret, "LOG_FORMAT": "json", "LOG_LEVEL": logLevel,
		// A SIGKILLed member gives its partitions up after 6 s, not 45 s.
		"KAFKA_SESSION_TIMEOUT": "6s",
		// kfake restarts a rebalance's deadline at every join, and members
		// killed mid-rebalance never rejoin: a short rebalance timeout keeps
		// a storm of kills from stalling the group for minutes.
		"KAFKA_REBALANCE_TIMEOUT": "8s",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for i := range o.Replicas {
		mp, err := freePort()
		if err != nil {
			return nil, err
		}
		ing, err := newProc(fmt.Sprintf("ingest-%d", i), filepath.Join(o.BinDir, "ingest"), with(map[string]string{
			"METRICS_ADDR": "127.0.0.1:" + strconv.Itoa(mp), "INGEST_TRANSACTIONAL_ID": fmt.Sprintf("chaos-ingest-%d", i),
			"BATCH_MAX_TRANSACTIONS": "300", "BATCH_MAX_WAIT": "400ms", "BATCH_MAX_WINDOW": "400ms", "INGEST_STALL_TIMEOUT": "20s",
			// Batches near the byte cap (issue #15): 300 requests of the
			// marketplace are about 90 KB, so most batches close by bytes.
			"BATCH_MAX_BYTES": "40000",
		}), o.LogDir)
		if err != nil {
			return nil, err
		}
		c.Workers = append(c.Workers, ing)
	}
	for i := range o.Replicas {
		mp, err := freePort()
		if err != nil {
			return nil, err
		}
		d, err := newProc(fmt.Sprintf("dispatcher-%d", i), filepath.Join(o.BinDir, "dispatcher"), with(map[string]string{
			"METRICS_ADDR": "127.0.0.1:" + strconv.Itoa(mp), "WOMPI_RATE_PER_SECOND": "200", "WOMPI_RATE_BURST": "20",
			"WOMPI_HTTP_TIMEOUT": "2s", "RECOVERY_GRACE": "4s", "DISPATCHER_LEASE_TTL": "3s", "WOMPI_HEALTH_INTERVAL": "2s",
			"DISPATCHER_INSTANCE_ID": fmt.Sprintf("chaos-dispatcher-%d", i), "DISPATCHER_KEY_MAX_AGE": KeyMaxAge.String(),
			"SMARTFASTPAY_RATE_PER_SECOND": "400", "SMARTFASTPAY_RATE_BURST": "40",
			"WEPAYOUT_RATE_PER_SECOND": "400", "WEPAYOUT_RATE_BURST": "40",
		}), o.LogDir)
		if err != nil {
			return nil, err
		}
		c.Workers = append(c.Workers, d)
	}
	for i := range o.Replicas {
		mp, err := freePort()
		if err != nil {
			return nil, err
		}
		t, err := newProc(fmt.Sprintf("tracker-%d", i), filepath.Join(o.BinDir, "tracker"), with(map[string]string{
			"METRICS_ADDR": "127.0.0.1:" + strconv.Itoa(mp), "TRACKER_ADDR": trackerAddrs[i], "POLL_INTERVAL": "1s", "POLL_MAX_BACKOFF": "2s",
		}), o.LogDir)
		if err != nil {
			return nil, err
		}
		c.Workers = append(c.Workers, t)
	}
	for _, w := range c.Workers {
		if err := w.Start(); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

func (c *Cluster) startBroker(ctx context.Context, o Options) (*Proc, error) {
	p, err := newProc("kfakebroker", filepath.Join(o.BinDir, "kfakebroker"), map[string]string{
		"KFAKE_PORTS": "0", "KFAKE_PARTITIONS": strconv.Itoa(o.Partitions),
		"KFAKE_TOPICS":         strings.Join(Topics, ","),
		"KFAKE_SESSION_REAPER": strconv.FormatBool(!o.NoReaper),
	}, o.LogDir)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	p.mu.Lock()
	cmd := exec.Command(p.bin)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = pw, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "brokers=") {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}
	}()
	select {
	case l := <-lines:
		c.Brokers = strings.Split(strings.TrimPrefix(l, "brokers="), ",")
		return p, nil
	case <-time.After(20 * time.Second):
		p.Kill()
		return nil, fmt.Errorf("kfakebroker printed no brokers line")
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// createTopics creates the workers' topics on an external cluster, with
// partitions each and the broker's default replication factor, and waits
// until every partition has a leader.
func createTopics(ctx context.Context, brokers []string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, int32(partitions), -1, nil, Topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	for {
		td, err := adm.ListTopics(ctx, Topics...)
		led := err == nil
		for _, name := range Topics {
			d, ok := td[name]
			led = led && ok && d.Err == nil && len(d.Partitions) == partitions
			for _, p := range d.Partitions {
				led = led && p.Leader >= 0 && p.Err == nil
			}
		}
		if led {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics without leaders: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startLB serves a round-robin reverse proxy over the tracker replicas: a
// dead replica's share goes to the live one; with both dead the simulator
// gets a 502 and retries, as Wompi would.
func (c *Cluster) startLB(backends []string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.LBAddr = ln.Addr().String()
	var next atomic.Uint64
	tr := &http.Transport{MaxIdleConnsPerHost: 32, ResponseHeaderTimeout: 20 * time.Second}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 2<<20))
		if err != nil {
			http.Error(w, "body", http.StatusBadRequest)
			return
		}
		start := next.Add(1)
		for i := range uint64(len(backends)) {
			b := backends[(start+i)%uint64(len(backends))]
			req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+b+r.URL.RequestURI(), strings.NewReader(string(body)))
			req.Header = r.Header.Clone()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				continue // dead replica: try the next
			}
			defer resp.Body.Close()
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
			return
		}
		c.lbFails.Add(1)
		http.Error(w, "no tracker", http.StatusBadGateway)
	})
	c.lb = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go c.lb.Serve(ln)
	return nil
}

// FlushRedis empties Redis: the loss the durability rules must survive.
func (c *Cluster) FlushRedis(ctx context.Context) error {
	for _, addr := range c.redisAll {
		if err := flushAll(addr); err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
	}
	return nil
}

func flushAll(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$8\r\nFLUSHALL\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+OK") {
		return fmt.Errorf("FLUSHALL: %q", line)
	}
	return nil
}

// SetFaults changes the simulator's fault knobs (JSON of wompitest.Faults).
func (c *Cluster) SetFaults(ctx context.Context, faults map[string]any) error {
	b, _ := json.Marshal(faults)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.SimRoot+"/_sim/faults", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("set faults: %s %s", resp.Status, msg)
	}
	return nil
}

// SetRailFaults changes a single-payout rail simulator's fault knobs (root
// is SmartFastPayRoot or WEpayoutRoot).
func (c *Cluster) SetRailFaults(ctx context.Context, root string, faults map[string]any) error {
	b, _ := json.Marshal(faults)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, root+"/_sim/faults", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("set faults at %s: %s %s", root, resp.Status, msg)
	}
	return nil
}

// GetJSON fetches a simulator debug endpoint.
func (c *Cluster) GetJSON(ctx context.Context, path string, v any) error {
	return c.GetJSONAt(ctx, c.SimRoot, path, v)
}

// GetJSONAt fetches a debug endpoint of the simulator at root.
func (c *Cluster) GetJSONAt(ctx context.Context, root, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, root+path, nil)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Close stops every process: workers with SIGTERM first.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, w := range c.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.Stop(10 * time.Second) }()
	}
	wg.Wait()
	for i := len(c.infra) - 1; i >= 0; i-- {
		c.infra[i].Stop(5 * time.Second)
		c.infra[i].log.Close()
	}
	for _, w := range c.Workers {
		w.log.Close()
	}
	if c.lb != nil {
		c.lb.Close()
	}
}

func startWithArgs(p *Proc, args ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

func mustLookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return name
	}
	return p
}

// freePort returns a port no other server of the run is given and no
// outgoing connection takes while its owner is killed (see [ports.Free]): a
// restarted tracker binds its address again.
func freePort() (int, error) { return ports.One() }

func waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after 15s", addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
