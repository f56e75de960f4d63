package apachekafka

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv/ports"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Options configures [Start]. The zero value is one node
// from [FindDist] with a 512 MiB heap in a fresh temporary folder.
type Options struct {
	// Nodes is the number of combined broker+controller nodes (default 1).
	// With 3 or more, topics are replicated three ways with
	// min.insync.replicas=2, so one node may die without losing acks=all
	// writes or stopping transactions.
	Nodes int
	// Dist is the Java and jars to run; zero means FindDist(true).
	Dist Dist
	// Heap is the JVM's -Xmx of each node (default "512m").
	Heap string
	// Dir holds the nodes' configuration and log dirs (node-<id>, emptied
	// by Start: every Start is a fresh cluster). Empty: a new temporary
	// folder that Stop removes.
	Dir string
	// Output receives the brokers' log lines (WARN and up, each prefixed
	// with the node id). The last 64 KiB of each node's output are also
	// kept and quoted when a node fails to start.
	Output io.Writer
	// JVMFlags are added to each broker's JVM command line, after the
	// defaults (-Xmx, -XX:+UseSerialGC ...), so they can override them.
	JVMFlags []string
	// StartTimeout bounds the start of the whole cluster, and of one node
	// in RestartNode (default 2 minutes: the JVMs start slowly on a busy
	// 2-core machine).
	StartTimeout time.Duration
}

// Cluster is an Apache Kafka cluster in KRaft mode run from the jars:
// every node is a broker and a controller, listening on 127.0.0.1 only.
// Every JVM is the leader of its own process group and gets SIGKILL from
// the kernel when the thread that started it dies, so a test binary that is
// killed leaves no JVM behind; Stop ends them all.
type Cluster struct {
	opts      Options
	clusterID string
	dir       string
	ownDir    bool
	nodes     []*kafkaNode
	started   time.Duration
}

type kafkaNode struct {
	id        int // node.id: index + 1
	port      int // client listener
	ctrlPort  int // controller listener
	propsPath string
	dataDir   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current JVM has exited
	out  *tailBuffer
}

func (n *kafkaNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// Start formats the log dirs of a fresh cluster, starts its nodes
// and waits until every node answers a metadata request listing all of
// them. On failure nothing is left running.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Heap == "" {
		o.Heap = "512m"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.Dist == (Dist{}) {
		d, err := FindDist(true)
		if err != nil {
			return nil, err
		}
		o.Dist = d
	}
	var lastErr error
	for range 3 { // a free port may be taken before the JVM binds it
		c, err := start(ctx, o)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errPortTaken = errors.New("port taken")

// DefaultPartitions is num.partitions: the partition count of topics
// created on demand (auto-creation, or CreateTopics with -1 partitions).
const DefaultPartitions = 3

func start(ctx context.Context, o Options) (_ *Cluster, err error) {
	t0 := time.Now()
	c := &Cluster{opts: o, dir: o.Dir}
	if c.dir == "" {
		removeOrphanDirs()
		if c.dir, err = os.MkdirTemp("", tempPrefix); err != nil {
			return nil, err
		}
		c.ownDir = true
		pid := []byte(strconv.Itoa(os.Getpid()))
		if err := os.WriteFile(filepath.Join(c.dir, ownerFile), pid, 0o644); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	c.clusterID = newClusterID()

	ports, err := freePorts(2 * o.Nodes)
	if err != nil {
		return nil, err
	}
	var voters []string
	for i := range o.Nodes {
		n := &kafkaNode{id: i + 1, port: ports[2*i], ctrlPort: ports[2*i+1]}
		n.dataDir = filepath.Join(c.dir, fmt.Sprintf("node-%d", n.id))
		n.propsPath = filepath.Join(c.dir, fmt.Sprintf("node-%d.properties", n.id))
		// A fresh cluster: nothing of an earlier one in a reused Dir (or of
		// an attempt that lost a port race) may survive into this one.
		if err := os.RemoveAll(n.dataDir); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", n.id, n.ctrlPort))
	}
	if err := os.WriteFile(c.log4jPath(), []byte(log4jConfig), 0o644); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		props := brokerProperties(n, strings.Join(voters, ","), o.Nodes)
		if err := os.WriteFile(n.propsPath, []byte(props), 0o644); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	// Format every node's log dir (one JVM each, in parallel).
	errs := make(chan error, len(c.nodes))
	for _, n := range c.nodes {
		go func() { errs <- c.format(ctx, n) }()
	}
	for range c.nodes {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := c.launch(n); err != nil {
			return nil, err
		}
	}
	for _, n := range c.nodes {
		if err := c.waitReady(ctx, n, o.Nodes); err != nil {
			return nil, err
		}
	}
	c.started = time.Since(t0)
	return c, nil
}

// Temporary cluster folders are named tempPrefix+random and hold the pid of
// the process that started them in ownerFile. A process killed before Stop
// (a test binary without testenv.Main, or killed outright) cannot remove its
// folder; the next Start removes the folders whose owner is gone.
const (
	tempPrefix = "apachekafka-"
	ownerFile  = "owner.pid"
)

func removeOrphanDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// brokerProperties is the server.properties of one node of an n-node
// cluster. Replication, min ISR and the internal topics' replication fit
// the node count; the internal topics have few partitions so they are
// created quickly; a group's first rebalance does not wait.
func brokerProperties(n *kafkaNode, voters string, nodes int) string {
	repl, minISR := 1, 1
	if nodes >= 3 {
		repl, minISR = 3, 2
	} else if nodes == 2 {
		repl = 2
	}
	kv := [][2]string{
		{"process.roles", "broker,controller"},
		{"node.id", strconv.Itoa(n.id)},
		{"controller.quorum.voters", voters},
		{"listeners", fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", n.port, n.ctrlPort)},
		{"advertised.listeners", "PLAINTEXT://" + n.addr()},
		{"controller.listener.names", "CONTROLLER"},
		{"inter.broker.listener.name", "PLAINTEXT"},
		{"listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"},
		{"log.dirs", n.dataDir},
		{"auto.create.topics.enable", "true"},
		{"num.partitions", strconv.Itoa(DefaultPartitions)},
		{"default.replication.factor", strconv.Itoa(repl)},
		{"min.insync.replicas", strconv.Itoa(minISR)},
		{"offsets.topic.replication.factor", strconv.Itoa(repl)},
		{"offsets.topic.num.partitions", "3"},
		{"transaction.state.log.replication.factor", strconv.Itoa(repl)},
		{"transaction.state.log.min.isr", strconv.Itoa(minISR)},
		{"transaction.state.log.num.partitions", "3"},
		{"share.coordinator.state.topic.replication.factor", strconv.Itoa(repl)},
		{"share.coordinator.state.topic.min.isr", strconv.Itoa(minISR)},
		{"group.initial.rebalance.delay.ms", "0"},
		// The workers accept KAFKA_SESSION_TIMEOUT down to 1 s (pkg/config);
		// the broker's default floor is 6 s.
		{"group.min.session.timeout.ms", "1000"},
		{"unclean.leader.election.enable", "false"},
		{"log.segment.bytes", strconv.Itoa(16 << 20)},
		{"num.network.threads", "2"},
		{"num.io.threads", "4"},
		{"num.recovery.threads.per.data.dir", "1"},
		{"background.threads", "4"},
	}
	var sb strings.Builder
	for _, p := range kv {
		sb.WriteString(p[0] + "=" + p[1] + "\n")
	}
	return sb.String()
}

// log4jConfig sends WARN and up to stderr, prefixed with the node id.
const log4jConfig = `status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [kafka-${sys:apachekafka.node}] %d{HH:mm:ss.SSS} %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
`

func (c *Cluster) log4jPath() string { return filepath.Join(c.dir, "log4j2.properties") }

func (c *Cluster) jvmArgs(n *kafkaNode, flags []string, main string, args ...string) []string {
	a := []string{
		"-Xmx" + c.opts.Heap,
		"-XX:+UseSerialGC",
		"-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + c.log4jPath(),
		"-Dapachekafka.node=" + strconv.Itoa(n.id),
	}
	a = append(a, flags...)
	a = append(a, "-cp", c.opts.Dist.classpath(), main)
	return append(a, args...)
}

// format runs Kafka's storage tool (kafka-storage.sh format) on n's log dir.
func (c *Cluster) format(ctx context.Context, n *kafkaNode) error {
	// C1 only: the tool runs for a second, compiling with C2 costs more.
	cmd := exec.CommandContext(ctx, c.opts.Dist.Java, c.jvmArgs(n, []string{"-XX:TieredStopAtLevel=1"}, "kafka.tools.StorageTool",
		"format", "--ignore-formatted", "--cluster-id="+c.clusterID, "-c", n.propsPath)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("format node %d: %v: %s", n.id, err, lastLines(out, 10))
	}
	return nil
}

// launch starts n's JVM (kafka.Kafka) without waiting for it to serve.
func (c *Cluster) launch(n *kafkaNode) error {
	out := newTailBuffer(64 << 10)
	cmd := exec.Command(c.opts.Dist.Java, c.jvmArgs(n, c.opts.JVMFlags, "kafka.Kafka", n.propsPath)...)
	var w io.Writer = out
	if c.opts.Output != nil {
		w = io.MultiWriter(out, c.opts.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so Stop and KillNode reach anything it forks;
	// SIGKILL from the kernel when the starting thread dies (see below).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done := make(chan struct{})
	started := make(chan error, 1)
	// PDEATHSIG fires when the *thread* that forked the child exits, so the
	// JVM is started from a locked thread that lives until it has exited.
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start node %d: %w", n.id, err)
	}
	n.mu.Lock()
	n.cmd, n.done, n.out = cmd, done, out
	n.mu.Unlock()
	return nil
}

// waitReady polls n until it answers a metadata request that lists at
// least want brokers, n among them.
func (c *Cluster) waitReady(ctx context.Context, n *kafkaNode, want int) error {
	n.mu.Lock()
	done, out := n.done, n.out
	n.mu.Unlock()
	var last error
	for {
		select {
		case <-done:
			msg := lastLines(out.Bytes(), 15)
			if strings.Contains(msg, "Address already in use") {
				return fmt.Errorf("node %d exited: %w: %s", n.id, errPortTaken, msg)
			}
			return fmt.Errorf("node %d exited while starting: %s", n.id, msg)
		case <-ctx.Done():
			return fmt.Errorf("node %d not ready (%v, last error: %v): %s", n.id, ctx.Err(), last, lastLines(out.Bytes(), 15))
		case <-time.After(100 * time.Millisecond):
		}
		ids, err := brokerIDs(ctx, n.addr())
		if err != nil {
			last = err
			continue
		}
		if len(ids) >= want && ids[int32(n.id)] {
			return nil
		}
		last = fmt.Errorf("metadata lists %d of %d brokers", len(ids), want)
	}
}

// brokerIDs asks the broker at addr (and only it) which brokers it knows.
func brokerIDs(ctx context.Context, addr string) (map[int32]bool, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return nil, err
	}
	ids := map[int32]bool{}
	for _, b := range resp.Brokers {
		ids[b.NodeID] = true
	}
	return ids, nil
}

// Brokers returns the client address of every node, "127.0.0.1:port".
func (c *Cluster) Brokers() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr())
	}
	return out
}

// Nodes returns the number of nodes.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// StartupTime is how long Start took, from formatting to the last
// node answering metadata.
func (c *Cluster) StartupTime() time.Duration { return c.started }

// Dir is the folder of the nodes' configuration and log dirs.
func (c *Cluster) Dir() string { return c.dir }

func (c *Cluster) node(i int) (*kafkaNode, error) {
	if i < 0 || i >= len(c.nodes) {
		return nil, fmt.Errorf("apachekafka: node index %d out of range [0,%d)", i, len(c.nodes))
	}
	return c.nodes[i], nil
}

// NodeID returns the Kafka node.id of node i (0-based index): i+1.
func (c *Cluster) NodeID(i int) int32 { return int32(i + 1) }

// Running reports whether node i's JVM is alive.
func (c *Cluster) Running(i int) bool {
	n, err := c.node(i)
	if err != nil {
		return false
	}
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
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

// PID returns node i's JVM process id, or 0 when it is not running.
func (c *Cluster) PID(i int) int {
	if !c.Running(i) {
		return 0
	}
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Pid
}

// RSS returns node i's resident memory in bytes (from /proc), or 0.
func (c *Cluster) RSS(i int) int64 {
	pid := c.PID(i)
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// KillNode sends SIGKILL to node i's process group, like a machine that
// dies, and waits until the JVM is gone. Killing a dead node is a no-op.
func (c *Cluster) KillNode(i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	n.signal(syscall.SIGKILL, 0)
	return nil
}

// StopNode shuts node i down in order (SIGTERM: a controlled shutdown that
// hands its partitions over), and kills it if it has not exited after
// 30 s.
func (c *Cluster) StopNode(i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	n.signal(syscall.SIGTERM, 30*time.Second)
	return nil
}

// RestartNode starts node i again on the same ports and log dir, first
// stopping it (SIGTERM) if it is still running, and waits until it answers
// metadata listing itself. Its partitions catch up from the others
// afterwards; wait for that with [Cluster.WaitInSync] when it matters.
func (c *Cluster) RestartNode(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	n.signal(syscall.SIGTERM, 30*time.Second)
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	for {
		if err := c.launch(n); err != nil {
			return err
		}
		err := c.waitReady(ctx, n, 1)
		if err == nil {
			return nil
		}
		// The old JVM's port can linger for a moment.
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			n.signal(syscall.SIGKILL, 0)
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// signal sends sig to n's process group and waits until the JVM exits,
// escalating to SIGKILL after grace (0: wait without escalating).
func (n *kafkaNode) signal(sig syscall.Signal, grace time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	if grace <= 0 {
		<-done
		return
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// LeaderOf returns the index (0-based) of the node that leads partition of
// topic, asking the running nodes.
func (c *Cluster) LeaderOf(ctx context.Context, topic string, partition int32) (int, error) {
	cl, err := c.liveClient()
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return -1, err
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return -1, fmt.Errorf("apachekafka: topic %q: %v", topic, d.Err)
	}
	p, ok := d.Partitions[partition]
	if !ok {
		return -1, fmt.Errorf("apachekafka: topic %q has no partition %d", topic, partition)
	}
	if p.Leader < 0 {
		return -1, fmt.Errorf("apachekafka: %s/%d has no leader", topic, partition)
	}
	return int(p.Leader) - 1, nil
}

// WaitInSync waits until every partition of topic has all its replicas in
// sync, for example after RestartNode.
func (c *Cluster) WaitInSync(ctx context.Context, topic string) error {
	for {
		cl, err := c.liveClient()
		if err != nil {
			return err
		}
		td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
		cl.Close()
		if err == nil {
			if d, ok := td[topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
				ok := true
				for _, p := range d.Partitions {
					if len(p.ISR) < len(p.Replicas) {
						ok = false
					}
				}
				if ok {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apachekafka: %q not in sync: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) liveClient() (*kgo.Client, error) {
	var seeds []string
	for i, n := range c.nodes {
		if c.Running(i) {
			seeds = append(seeds, n.addr())
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("apachekafka: no node is running")
	}
	return kgo.NewClient(kgo.SeedBrokers(seeds...))
}

// Stop shuts every node down (SIGTERM, SIGKILL after 15 s), waits for the
// JVMs to exit, and removes the folder when Start created it.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.signal(syscall.SIGTERM, 15*time.Second)
		}()
	}
	wg.Wait()
	if c.ownDir {
		_ = os.RemoveAll(c.dir)
	}
}

// freePorts returns n distinct loopback ports that were free when asked and
// stay this process's (see [ports.Free]): a node restarted on its port finds
// it free.
func freePorts(n int) ([]int, error) {
	ps, err := ports.Free(n)
	if err != nil {
		return nil, fmt.Errorf("apachekafka: find free port: %w", err)
	}
	return ps, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// newClusterID returns a KRaft cluster id: 16 random bytes in URL-safe
// base64. Like Kafka's own Uuid.randomUuid, never one starting with '-':
// the storage tool's argument parser would read it as a flag
// ("--cluster-id: expected one argument"), one start in 64.
func newClusterID() string {
	for {
		var id [16]byte
		_, _ = rand.Read(id[:])
		if s := base64.RawURLEncoding.EncodeToString(id[:]); s[0] != '-' {
			return s
		}
	}
}
