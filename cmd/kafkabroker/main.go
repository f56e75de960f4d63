package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wompi-payouts/pipeline/pkg/testenv/apachekafka"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kafkabroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 1, "combined broker+controller nodes; 3 replicates topics three ways with min.insync.replicas=2")
	heap := fs.String("heap", "512m", "JVM max heap (-Xmx) of each node")
	dir := fs.String("dir", "", "folder for the nodes' configuration and log dirs (default: a temporary folder removed at exit)")
	fetch := fs.Bool("fetch", false, "only copy Apache Kafka's jars from Maven Central into the cache, then exit")
	jvm := fs.String("jvm-flags", "", "extra JVM flags of each broker, space-separated (after the defaults, so they override them)")
	verbose := fs.Bool("v", false, "copy the brokers' WARN and ERROR lines (with -fetch: Maven's output) to stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *nodes < 1 || *nodes > 9 {
		fmt.Fprintf(stderr, "kafkabroker: invalid -nodes=%d: must be 1..9\n", *nodes)
		return 2
	}
	if *fetch {
		var mvnLog io.Writer // Maven's output is quoted on failure; -v shows it
		if *verbose {
			mvnLog = stderr
		}
		lib, err := apachekafka.FetchJars(mvnLog)
		if err != nil {
			fmt.Fprintf(stderr, "kafkabroker: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "jars=%s\n", lib)
		return 0
	}
	o := apachekafka.Options{Nodes: *nodes, Heap: *heap, Dir: *dir, JVMFlags: strings.Fields(*jvm)}
	if *verbose {
		o.Output = stderr
	}
	c, err := apachekafka.Start(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "kafkabroker: %v\n", err)
		return 1
	}
	defer c.Stop()
	var rss []string
	for i := range c.Nodes() {
		rss = append(rss, fmt.Sprintf("%d MiB", c.RSS(i)>>20))
	}
	fmt.Fprintf(stdout, "brokers=%s\n", strings.Join(c.Brokers(), ","))
	fmt.Fprintf(stderr, "kafkabroker: Apache Kafka %s, %d node(s) ready in %v; RSS %s\n",
		apachekafka.Version, c.Nodes(), c.StartupTime().Round(1e6), strings.Join(rss, ", "))
	<-ctx.Done()
	fmt.Fprintln(stderr, "kafkabroker: stopping")
	return 0
}
