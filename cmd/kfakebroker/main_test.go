package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// When re-executed by TestSignalStopsBroker, the test binary becomes the
// broker.
func TestMain(m *testing.M) {
	if os.Getenv("KFAKEBROKER_RUN_MAIN") == "1" {
		os.Args = os.Args[:1] // drop the -test.* flags
		main()
		return
	}
	os.Exit(m.Run())
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string // substring of the one-line error
	}{
		{name: "defaults", want: config{ports: []int{0}, partitions: 6, reap: true}},
		{name: "env", env: map[string]string{"KFAKE_PORTS": "9092, 9093,9094", "KFAKE_PARTITIONS": "3", "KFAKE_TOPICS": "payouts.requests.v1, payouts.batches.v1,"},
			want: config{ports: []int{9092, 9093, 9094}, partitions: 3, topics: []string{"payouts.requests.v1", "payouts.batches.v1"}, reap: true}},
		{name: "flag wins over env", args: []string{"-partitions", "2"}, env: map[string]string{"KFAKE_PARTITIONS": "9"},
			want: config{ports: []int{0}, partitions: 2, reap: true}},
		{name: "blank env is unset", env: map[string]string{"KFAKE_PARTITIONS": " "}, want: config{ports: []int{0}, partitions: 6, reap: true}},
		{name: "three random", args: []string{"--ports=0,0,0"}, want: config{ports: []int{0, 0, 0}, partitions: 6, reap: true}},
		{name: "reaper off", env: map[string]string{"KFAKE_SESSION_REAPER": "false"}, want: config{ports: []int{0}, partitions: 6}},
		{name: "bad reaper", args: []string{"-session-reaper=maybe"}, wantErr: `invalid -session-reaper="maybe"`},
		{name: "bad partitions env", env: map[string]string{"KFAKE_PARTITIONS": "six"}, wantErr: `invalid KFAKE_PARTITIONS="six"`},
		{name: "bad partitions flag", args: []string{"-partitions", "0"}, wantErr: `invalid -partitions="0"`},
		{name: "port out of range", env: map[string]string{"KFAKE_PORTS": "70000"}, wantErr: `invalid KFAKE_PORTS="70000"`},
		{name: "port not a number", env: map[string]string{"KFAKE_PORTS": "9092,x"}, wantErr: `invalid KFAKE_PORTS="9092,x"`},
		{name: "repeated port", env: map[string]string{"KFAKE_PORTS": "9092,9092"}, wantErr: "port 9092 repeated"},
		{name: "bad topic", env: map[string]string{"KFAKE_TOPICS": "ok,not ok"}, wantErr: `invalid KFAKE_TOPICS="ok,not ok"`},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "-nope"},
		{name: "stray arg", args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, env(tc.env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHelpListsFlagsAndEnv(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, env(nil), &out, &errOut); code != 0 {
		t.Fatalf("--help exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"-ports", "KFAKE_PORTS", "-partitions", "KFAKE_PARTITIONS", "-topics", "KFAKE_TOPICS", "-session-reaper", "KFAKE_SESSION_REAPER"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %s:\n%s", want, out.String())
		}
	}
}

func TestBadValueIsOneLine(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), nil, env(map[string]string{"KFAKE_PARTITIONS": "-1"}), &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if lines := strings.Split(strings.TrimSpace(errOut.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "KFAKE_PARTITIONS") {
		t.Fatalf("stderr = %q, want one line naming KFAKE_PARTITIONS", errOut.String())
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
}

// parseBrokers reads the single ready line.
func parseBrokers(t *testing.T, r io.Reader) []string {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("reading ready line: %v (got %q)", err, line)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "brokers=")
	if !ok || v == "" {
		t.Fatalf("ready line = %q, want brokers=host:port,...", line)
	}
	return strings.Split(v, ",")
}

func TestRunServesSeededAndAutoCreatedTopics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"KFAKE_PORTS": "0,0", "KFAKE_PARTITIONS": "4", "KFAKE_TOPICS": "payouts.requests.v1"}), pw, io.Discard)
		pw.Close()
	}()
	brokers := parseBrokers(t, pr)
	go io.Copy(io.Discard, pr) //nolint:errcheck // drain
	if len(brokers) != 2 {
		t.Fatalf("brokers = %v, want 2", brokers)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	defer tcancel()
	td, err := adm.ListTopics(tctx, "payouts.requests.v1")
	if err != nil {
		t.Fatal(err)
	}
	if d := td["payouts.requests.v1"]; d.Err != nil || len(d.Partitions) != 4 {
		t.Fatalf("seeded topic: err %v, %d partitions, want 4", d.Err, len(d.Partitions))
	}

	// Auto-created on produce, with the configured partition count.
	if err := cl.ProduceSync(tctx, &kgo.Record{Topic: "auto.created", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to an unknown topic: %v", err)
	}
	td, err = adm.ListTopics(tctx, "auto.created")
	if err != nil || len(td["auto.created"].Partitions) != 4 {
		t.Fatalf("auto-created topic: %v, %d partitions", err, len(td["auto.created"].Partitions))
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

// The real process prints the ready line and exits 0 on SIGTERM.
func TestSignalStopsBroker(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "KFAKEBROKER_RUN_MAIN=1", "KFAKE_PORTS=0")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			brokers := parseBrokers(t, stdout)
			if len(brokers) != 1 || !strings.HasPrefix(brokers[0], "127.0.0.1:") {
				t.Fatalf("brokers = %v", brokers)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err := <-waited:
				if err != nil {
					t.Fatalf("exit after %v: %v; stderr %s", sig, err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10s after %v", sig)
			}
		})
	}
}
