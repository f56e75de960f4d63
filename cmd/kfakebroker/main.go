package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wompi-payouts/pipeline/pkg/kfakereaper"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// config is the validated configuration.
type config struct {
	ports      []int
	partitions int
	topics     []string
	reap       bool // run a kfakereaper.Reaper
}

// setting is one flag with its environment variable.
type setting struct {
	flag, env, def, usage string
	val                   string
	fromFlag              bool
}

// source names where a value came from, for error messages.
func (s *setting) source() string {
	if s.fromFlag {
		return "-" + s.flag
	}
	return s.env
}

func (s *setting) errorf(format string, a ...any) error {
	return fmt.Errorf("kfakebroker: invalid %s=%q: %s", s.source(), s.val, fmt.Sprintf(format, a...))
}

// errHelp means -help was asked for and usage was printed.
var errHelp = errors.New("help requested")

func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	ports := &setting{flag: "ports", env: "KFAKE_PORTS", def: "0",
		usage: "comma-separated listen ports on 127.0.0.1, one broker each; 0 = random port"}
	parts := &setting{flag: "partitions", env: "KFAKE_PARTITIONS", def: "6",
		usage: "partitions of seeded and auto-created topics (1..10000)"}
	topics := &setting{flag: "topics", env: "KFAKE_TOPICS", def: "",
		usage: "comma-separated topics to create at start"}
	reap := &setting{flag: "session-reaper", env: "KFAKE_SESSION_REAPER", def: "true",
		usage: "time out group members kfake keeps after they die mid-join, as Kafka does (see pkg/kfakereaper)"}
	all := []*setting{ports, parts, topics, reap}

	fs := flag.NewFlagSet("kfakebroker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range all {
		s.val = s.def
		if v, ok := lookup(getenv, s.env); ok {
			s.val = v
		}
		fs.StringVar(&s.val, s.flag, s.val, s.usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: kfakebroker [flags]\n\nRuns an in-process kfake Kafka cluster until SIGTERM/SIGINT and prints\n\"brokers=host:port,...\" on stdout once it listens. A flag wins over its variable.\n\n")
		for _, s := range all {
			fmt.Fprintf(stdout, "  -%s (env %s, default %q)\n        %s\n", s.flag, s.env, s.def, s.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // flag has already called fs.Usage
			return config{}, errHelp
		}
		return config{}, fmt.Errorf("kfakebroker: %v (see -help)", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("kfakebroker: unexpected argument %q (see -help)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		for _, s := range all {
			if s.flag == f.Name {
				s.fromFlag = true
			}
		}
	})

	var cfg config
	seen := map[int]bool{}
	for _, p := range strings.Split(ports.val, ",") {
		p = strings.TrimSpace(p)
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return config{}, ports.errorf("want ports 0..65535 separated by commas")
		}
		if n != 0 && seen[n] {
			return config{}, ports.errorf("port %d repeated", n)
		}
		seen[n] = true
		cfg.ports = append(cfg.ports, n)
	}
	n, err := strconv.Atoi(strings.TrimSpace(parts.val))
	if err != nil || n < 1 || n > 10000 {
		return config{}, parts.errorf("want an integer 1..10000")
	}
	cfg.partitions = n
	for _, tp := range strings.Split(topics.val, ",") {
		tp = strings.TrimSpace(tp)
		if tp == "" {
			continue
		}
		if !validTopic(tp) {
			return config{}, topics.errorf("topic %q: want 1..249 of [A-Za-z0-9._-], not \".\" or \"..\"", tp)
		}
		cfg.topics = append(cfg.topics, tp)
	}
	if cfg.reap, err = strconv.ParseBool(strings.TrimSpace(reap.val)); err != nil {
		return config{}, reap.errorf("want true or false")
	}
	return cfg, nil
}

// lookup returns a non-blank environment value.
func lookup(getenv func(string) string, key string) (string, bool) {
	v := getenv(key)
	if strings.TrimSpace(v) == "" {
		return "", false
	}
	return v, true
}

func validTopic(s string) bool {
	if len(s) == 0 || len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// run starts the cluster, prints the brokers line and blocks until ctx is
// done. It returns the process exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	opts := []kfake.Opt{
		kfake.Ports(cfg.ports...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.partitions),
	}
	if len(cfg.topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.partitions), cfg.topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "kfakebroker: start cluster on ports %v: %v\n", cfg.ports, err)
		return 1
	}
	defer c.Close()
	if cfg.reap {
		r, err := kfakereaper.Start(c, kfakereaper.Options{Logger: log})
		if err != nil {
			fmt.Fprintf(stderr, "kfakebroker: start the session reaper: %v\n", err)
			return 1
		}
		defer r.Close()
	}

	fmt.Fprintf(stdout, "brokers=%s\n", strings.Join(c.ListenAddrs(), ","))
	log.Info("kfakebroker ready", "brokers", len(cfg.ports), "partitions", cfg.partitions, "seeded_topics", len(cfg.topics),
		"session_reaper", cfg.reap)
	<-ctx.Done()
	log.Info("kfakebroker stopping")
	return 0
}
