package apachekafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPomPinsVersion(t *testing.T) {
	v, err := pomVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v != Version {
		t.Fatalf("%s pins kafka.version %s, Version is %s; bump them together", kafkaPom, v, Version)
	}
}

func TestBrokerProperties(t *testing.T) {
	n := &kafkaNode{id: 2, port: 1000, ctrlPort: 1001, dataDir: "/d"}
	for _, tc := range []struct {
		nodes        int
		repl, minISR string
	}{{1, "1", "1"}, {3, "3", "2"}} {
		p := props(brokerProperties(n, "1@x:1", tc.nodes))
		want := map[string]string{
			"node.id":                                  "2",
			"default.replication.factor":               tc.repl,
			"min.insync.replicas":                      tc.minISR,
			"offsets.topic.replication.factor":         tc.repl,
			"transaction.state.log.replication.factor": tc.repl,
			"transaction.state.log.min.isr":            tc.minISR,
			"group.initial.rebalance.delay.ms":         "0",
			"auto.create.topics.enable":                "true",
			"num.partitions":                           "3",
			"listeners":                                "PLAINTEXT://127.0.0.1:1000,CONTROLLER://127.0.0.1:1001",
		}
		for k, v := range want {
			if p[k] != v {
				t.Errorf("%d nodes: %s=%q, want %q", tc.nodes, k, p[k], v)
			}
		}
	}
}

func props(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// wantReal skips the broker tests unless real Kafka was asked for
// (TEST_KAFKA=real or TEST_REQUIRE_REAL_KAFKA=1): they start JVMs.
func wantReal(t *testing.T) Dist {
	t.Helper()
	req := os.Getenv("TEST_REQUIRE_REAL_KAFKA")
	require := req == "1" || strings.EqualFold(req, "true")
	if !require && os.Getenv("TEST_KAFKA") != "real" {
		t.Skip("starts Apache Kafka; set TEST_KAFKA=real to run")
	}
	d, err := FindDist(true)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return d
}

func TestSingleNodeTransactionsAndStop(t *testing.T) {
	d := wantReal(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Dist: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1 node up in %v, RSS %d MiB", c.StartupTime().Round(time.Millisecond), c.RSS(0)>>20)
	pid, dir := c.PID(0), c.Dir()
	if pid == 0 || c.RSS(0) == 0 {
		t.Fatalf("pid %d, rss %d", pid, c.RSS(0))
	}

	// Auto-created topic, a committed and an aborted transaction.
	const topic = "auto.created"
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.TransactionalID("t1"), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, commit := range []bool{true, false} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "commit=%v", commit)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td[topic].Partitions); n != DefaultPartitions {
		t.Errorf("auto-created topic has %d partitions, want %d", n, DefaultPartitions)
	}
	got := consumeAll(t, c.Brokers(), topic, 1)
	if len(got) != 1 || got[0] != "commit=true" {
		t.Errorf("read_committed saw %q, want only the committed record", got)
	}

	c.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("JVM %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left %s behind: %v", dir, err)
	}
}

// consumeAll reads want committed records of topic from the start.
func consumeAll(t *testing.T, brokers []string, topic string, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(out), want, topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	// Anything more (an aborted record leaking) arrives within a moment.
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	cl.PollFetches(sctx).EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	return out
}

// A three-node cluster keeps taking acks=all writes and transactions when
// the leader of their partition is SIGKILLed, and the node rejoins.
func TestThreeNodesSurviveLeaderKill(t *testing.T) {
	d := wantReal(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Dist: d, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("3 nodes up in %v, RSS %d/%d/%d MiB", c.StartupTime().Round(time.Millisecond), c.RSS(0)>>20, c.RSS(1)>>20, c.RSS(2)>>20)

	const topic = "replicated"
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitInSync(ctx, topic); err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(adm).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if r := len(td[topic].Partitions[0].Replicas); r != 3 {
		t.Fatalf("topic has %d replicas, want 3", r)
	}

	p, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.TransactionalID("t3"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	txn := func(v string) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(tctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
		if err := p.EndTransaction(tctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit %s: %v", v, err)
		}
	}
	txn("before")
	leader, err := c.LeaderOf(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.KillNode(leader); err != nil {
		t.Fatal(err)
	}
	if c.Running(leader) {
		t.Fatal("killed node still running")
	}
	txn("after-kill")
	if l, err := c.LeaderOf(ctx, topic, 0); err != nil || l == leader {
		t.Errorf("leader after kill = %d, %v; the killed node was %d", l, err, leader)
	}
	if err := c.RestartNode(ctx, leader); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := c.WaitInSync(wctx, topic); err != nil {
		t.Fatal(err)
	}
	txn("after-restart")
	got := consumeAll(t, c.Brokers(), topic, 3)
	if strings.Join(got, ",") != "before,after-kill,after-restart" {
		t.Errorf("records = %q", got)
	}
}

// A test binary that dies by SIGKILL takes its JVMs with it
// (PR_SET_PDEATHSIG), so no broker outlives a killed test run.
func TestNoJVMOutlivesAKilledParent(t *testing.T) {
	if os.Getenv("APACHEKAFKA_CHILD") == "1" {
		c, err := Start(context.Background(), Options{Dir: os.Getenv("APACHEKAFKA_CHILD_DIR")})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("pid=%d\n", c.PID(0))
		time.Sleep(10 * time.Minute)
		return
	}
	wantReal(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoJVMOutlivesAKilledParent$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "APACHEKAFKA_CHILD=1", "APACHEKAFKA_CHILD_DIR="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck
	sc := bufio.NewScanner(stdout)
	jvm := 0
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pid="); ok {
			jvm, _ = strconv.Atoi(v)
			break
		}
		t.Logf("child: %s", sc.Text())
	}
	if jvm == 0 {
		t.Fatal("child printed no JVM pid")
	}
	if err := syscall.Kill(jvm, 0); err != nil {
		t.Fatalf("JVM %d not running before the kill: %v", jvm, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The JVM is the child's child: once dead it is reparented and
		// reaped by init, so kill(pid, 0) ends with ESRCH.
		if err := syscall.Kill(jvm, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-jvm, syscall.SIGKILL)
			t.Fatalf("JVM %d outlived its killed parent by 10 s", jvm)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRemoveOrphanDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name, owner string) string {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(d, "node-1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	orphan := mk(tempPrefix+"1", strconv.Itoa(dead.Process.Pid))
	mine := mk(tempPrefix+"2", strconv.Itoa(os.Getpid()))
	unowned := mk(tempPrefix+"3", "")
	other := mk("other-4", strconv.Itoa(dead.Process.Pid))
	removeOrphanDirs()
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("folder of a dead owner kept: %v", err)
	}
	for _, d := range []string{mine, unowned, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}
