package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/ingest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/track"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Options configure a local run.
type Options struct {
	// Requests is how many payout requests the marketplace publishes.
	Requests int
	// Garbage is how many undecodable records it also publishes, to show
	// the DLQ at work.
	Garbage int
	Seed    uint64
	Mix     Mix
	// Partitions of every topic; default 6.
	Partitions int
	// RedisURL, when set, is the Redis to use (else redis-server, else
	// miniredis when AllowEmbeddedRedis).
	RedisURL           string
	AllowEmbeddedRedis bool
	// Timeout bounds the wait for every request to settle.
	Timeout time.Duration
	// Serve keeps the stack up after the run (or with no requests at all)
	// until ctx is done.
	Serve bool
	// Out receives the progress and the report; Log the workers' logs.
	Out, Log io.Writer
	// Terminal draws a progress bar; otherwise plain progress lines.
	Terminal bool
	// External Kafka and simulator (the load run starts them as child
	// processes so their memory is not counted as the pipeline's).
	KafkaBrokers []string
	// ExternalKafka: KafkaBrokers is the user's cluster (KAFKA_BROKERS),
	// not a child kfake; the report names it, and the topics are created
	// there when missing.
	ExternalKafka bool
	SimURL        string
	// SettleDelay is the simulator's settlement delay (in-process sim only).
	SettleDelay time.Duration
	// Load turns on the load report (throughput, Redis round trips per
	// batch, CPU per request, latency percentiles, RSS, raw consume ratio).
	Load bool
	// Rail is the load run's rail (RunLoad): "" or "wompi", batches through
	// Wompi; "smartfastpay" or "wepayout", every request a single payout of
	// that rail (LoadMixFor). Other values are an error.
	Rail string
	// SmartFastPayURL and WEpayoutURL are external single-payout
	// simulators, for the load run (its child processes): with Load, the
	// stack enables exactly the rails given here, Wompi always.
	SmartFastPayURL, WEpayoutURL string

	// kafkaChild: KafkaBrokers is the load run's own kfake child, started
	// just before the stack.
	kafkaChild bool
	// children are the load run's child processes, whose CPU the load
	// report counts.
	children []child
}

// Stack is a running local pipeline.
type Stack struct {
	Brokers []string
	Redis   *Redis
	Sim     *wompitest.Server // nil when the simulator is external
	// The single-payout rails' simulators (in-process; nil in the load run).
	SmartFastPay *sfptest.Server
	WEpayout     *weptest.Server
	// The single-payout rails' simulator URLs; "" for a rail the stack does
	// not enable (the load run enables its rail only).
	SmartFastPayURL, WEpayoutURL string
	SimURL                       string
	WebhookAddr                  string
	Metrics                      map[string]string // worker -> metrics address
	Topics                       events.Topics
	Codec                        *events.Codec

	redisCalls *callCounter
	// freshKafka: this program created the Kafka cluster and Redis
	// (ownsState).
	freshKafka bool
	fake       *kfake.Cluster
	wg         sync.WaitGroup
	errs       chan error
	cancel     context.CancelFunc
	log        *slog.Logger
	wompi      *wompi.Client
}

// Default simulator credentials (pkg/wompi/wompitest's defaults).
const (
	simAPIKey    = "sim-api-key"
	simPrincipal = "sim-principal"
	simSecret    = "sim-events-secret"
)

// Start brings the stack up: Kafka, Redis, the simulator and the three
// workers. Stop it with Close.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Partitions <= 0 {
		o.Partitions = 6
	}
	logger := slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := &Stack{Topics: events.DefaultTopics(), Metrics: map[string]string{}, errs: make(chan error, 8), log: logger}
	ctx, s.cancel = context.WithCancel(ctx)
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	// Kafka.
	if len(o.KafkaBrokers) > 0 {
		s.Brokers = o.KafkaBrokers
		if err := ensureTopics(ctx, s.Brokers, o.Partitions, s.Topics); err != nil {
			return nil, err
		}
		if o.Load {
			if err := checkTopicsEmpty(ctx, s.Brokers, s.Topics); err != nil {
				return nil, err
			}
		}
	} else {
		t := s.Topics
		fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(o.Partitions),
			kfake.SeedTopics(int32(o.Partitions), t.Requests, t.Batches, t.BatchesDeferred, t.Status, t.BatchStatus, t.RequestsDLQ, t.DispatcherStarts))
		if err != nil {
			return nil, fmt.Errorf("kfake: %w", err)
		}
		s.fake, s.Brokers = fake, fake.ListenAddrs()
		if err := keepStartRecords(ctx, s.Brokers, t.DispatcherStarts); err != nil {
			return nil, err
		}
		if err := setRetention(ctx, s.Brokers, t.Status, statusRetention); err != nil {
			return nil, err
		}
	}

	// Redis.
	r, err := StartRedis(ctx, o.RedisURL, o.AllowEmbeddedRedis)
	if err != nil {
		return nil, err
	}
	s.Redis = r

	// The simulator.
	if o.SimURL != "" {
		s.SimURL = o.SimURL
	} else {
		delay := o.SettleDelay
		if delay <= 0 {
			delay = 300 * time.Millisecond
		}
		// Published-only: the services see only what Wompi publishes, as
		// against the real API (the tally reads the simulator's in-process
		// ledger, not its HTTP extras).
		sim, err := wompitest.New(wompitest.Config{SettleDelay: delay, SettleJitter: delay, Seed: o.Seed + 1,
			WebhookWorkers: 8, PublishedOnly: true, Logger: logger.With("worker", "wompisim")})
		if err != nil {
			return nil, err
		}
		if err := sim.Start("127.0.0.1:0"); err != nil {
			return nil, err
		}
		s.Sim, s.SimURL = sim, sim.BaseURL()
	}
	// The single-payout rails' simulators: in process in the local run; the
	// load run pays through one rail, whose simulator is its child process
	// (Options.SmartFastPayURL or WEpayoutURL), and enables no other.
	if o.Load {
		s.SmartFastPayURL, s.WEpayoutURL = o.SmartFastPayURL, o.WEpayoutURL
	} else {
		if s.SmartFastPay, err = sfptest.New(sfptest.Config{Seed: o.Seed + 2, Logger: logger.With("worker", "smartfastpaysim")}); err != nil {
			return nil, err
		}
		if err := s.SmartFastPay.Start("127.0.0.1:0"); err != nil {
			return nil, err
		}
		if s.WEpayout, err = weptest.New(weptest.Config{Seed: o.Seed + 3, Logger: logger.With("worker", "wepayoutsim")}); err != nil {
			return nil, err
		}
		if err := s.WEpayout.Start("127.0.0.1:0"); err != nil {
			return nil, err
		}
		s.SmartFastPayURL, s.WEpayoutURL = s.SmartFastPay.URL(), s.WEpayout.URL()
	}
	s.wompi, err = wompi.New(wompi.Config{BaseURL: s.SimURL, APIKey: simAPIKey, PrincipalID: simPrincipal, ReadRetries: wompi.DefaultReadRetries})
	if err != nil {
		return nil, err
	}
	s.Codec, err = events.NewCodec(ctx)
	if err != nil {
		return nil, err
	}

	env := map[string]string{
		"KAFKA_BROKERS":       joinComma(s.Brokers),
		"REDIS_URL":           s.Redis.URL,
		"WOMPI_BASE_URL":      s.SimURL,
		"WOMPI_API_KEY":       simAPIKey,
		"WOMPI_PRINCIPAL_ID":  simPrincipal,
		"WOMPI_EVENTS_SECRET": simSecret,
		"METRICS_ADDR":        "127.0.0.1:0",
		"TRACKER_ADDR":        "127.0.0.1:0",
		"LOG_FORMAT":          "text",
		// A local run wants quick batches; production keeps the budget
		// arithmetic of the README.
		"BATCH_MAX_WAIT":          "500ms",
		"BATCH_MAX_WINDOW":        "1s",
		"BATCH_MAX_TRANSACTIONS":  "1000",
		"INGEST_TRANSACTIONAL_ID": "payouts-local-ingest",
		"POLL_INTERVAL":           "1s",
	}
	if o.Load {
		env["BATCH_MAX_TRANSACTIONS"] = "2000"
	}
	if s.SmartFastPayURL != "" {
		env["SMARTFASTPAY_BASE_URL"] = s.SmartFastPayURL
		env["SMARTFASTPAY_CLIENT_ID"] = sfptest.DefaultClientID
		env["SMARTFASTPAY_CLIENT_SECRET"] = sfptest.DefaultClientSecret
		env["SMARTFASTPAY_WEBHOOK_SECRET"] = sfptest.DefaultWebhookSecret
	}
	if s.WEpayoutURL != "" {
		env["WEPAYOUT_BASE_URL"] = s.WEpayoutURL
		env["WEPAYOUT_API_KEY"] = weptest.DefaultAPIKey
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	// The tracker first: the simulator's webhooks need its address.
	tset := config.New("tracker", lookup)
	tst := track.BindConfig(tset)
	if err := tset.Parse(nil); err != nil {
		return nil, err
	}
	if err := s.startWorker(ctx, "tracker", func(ctx context.Context, started func()) error {
		return tst.Run(ctx, logger.With("worker", "tracker"), func(hook, metrics net.Addr) {
			s.WebhookAddr, s.Metrics["tracker"] = hook.String(), metrics.String()
			started()
		})
	}); err != nil {
		return nil, err
	}
	hookURL := "http://" + s.WebhookAddr + "/webhooks/wompi"
	if s.Sim != nil {
		s.Sim.SetWebhookURL(hookURL)
	} else if err := postJSON(ctx, s.SimURL[:len(s.SimURL)-len("/v1")]+"/_sim/webhook", `{"url":"`+hookURL+`"}`); err != nil {
		return nil, fmt.Errorf("point the simulator's webhooks at the tracker: %w", err)
	}

	// Ingest.
	iset := config.New("ingest", lookup)
	ist := ingest.BindConfig(iset)
	if err := iset.Parse(nil); err != nil {
		return nil, err
	}
	if err := s.startWorker(ctx, "ingest", func(ctx context.Context, started func()) error {
		return ist.Run(ctx, logger.With("worker", "ingest"), func(m net.Addr) { s.Metrics["ingest"] = m.String(); started() })
	}); err != nil {
		return nil, err
	}

	// The dispatcher, through the production wiring (dispatch.BindConfig,
	// Settings.Run: the path of cmd/dispatcher) on the local settings, with
	// a go-redis hook that counts its Redis calls for the load report.
	denv := maps.Clone(env)
	maps.Copy(denv, map[string]string{
		"WOMPI_HTTP_TIMEOUT":    "3s",
		"WOMPI_HEALTH_INTERVAL": "2s",
		"WOMPI_RATE_PER_SECOND": "200",
		"WOMPI_RATE_BURST":      "20",
		"DEFER_BALANCE_RETRY":   "3s",
		"DISPATCHER_RETRY_BASE": "100ms",
		"DISPATCHER_RETRY_MAX":  "2s",
		// After a Redis loss (and on a first start, before single-payout
		// lookups) recovery waits out the longest possible in-flight call
		// (RECOVERY_GRACE: WOMPI_HTTP_TIMEOUT, which also bounds the
		// single-payout rails' calls, and a late landing) plus a lease
		// renewal interval (a third of the lease) plus the lease fence's
		// slack (RECOVERY_GRACE - WOMPI_HTTP_TIMEOUT): 4 + 2 + 1 = 7 s.
		// Locally all are short: one dispatcher, nothing to take over.
		"RECOVERY_GRACE":       "4s",
		"DISPATCHER_LEASE_TTL": "6s",
	})
	for _, r := range []string{"SMARTFASTPAY", "WEPAYOUT"} {
		denv[r+"_RATE_PER_SECOND"], denv[r+"_RATE_BURST"] = "500", "50"
	}
	if o.Load {
		// Limits that never bind: the load run measures throughput, not
		// deferral or the providers' rate limits.
		denv["WOMPI_RATE_PER_SECOND"], denv["WOMPI_RATE_BURST"] = "5000", "500"
		denv["DAILY_LIMIT_CENTS"] = strconv.FormatInt(LoadLimitCents, 10)
		for _, r := range []string{"SMARTFASTPAY", "WEPAYOUT"} {
			denv[r+"_RATE_PER_SECOND"], denv[r+"_RATE_BURST"] = "1000000", "1000000"
		}
	}
	hooks := "http://" + s.WebhookAddr + "/webhooks/"
	if s.SmartFastPayURL != "" {
		denv["SMARTFASTPAY_CALLBACK_URL"] = hooks + "smartfastpay"
	}
	if s.WEpayoutURL != "" {
		denv["WEPAYOUT_NOTIFICATION_URL"] = hooks + "wepayout"
	}
	dset := config.New("dispatcher", func(k string) (string, bool) { v, ok := denv[k]; return v, ok })
	dst := dispatch.BindConfig(dset)
	if err := dset.Parse(nil); err != nil {
		return nil, fmt.Errorf("dispatcher settings: %w", err)
	}
	s.redisCalls = &callCounter{}
	dst.RedisHooks = append(dst.RedisHooks, s.redisCalls)
	s.freshKafka = ownsState(s.fake != nil, s.Redis.Kind, o)
	dst.FreshKafka = s.freshKafka
	if err := s.startWorker(ctx, "dispatcher", func(ctx context.Context, started func()) error {
		return dst.Run(ctx, logger.With("worker", "dispatcher"), func(m net.Addr) { s.Metrics["dispatcher"] = m.String(); started() })
	}); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// ownsState reports whether this program created the stack's Kafka
// cluster and its Redis moments ago, and the run's first start comes
// before anything else can reach them: the embedded kfake (embedded) or
// the load run's kfake child, with the redis-server child or miniredis
// (redisKind), and not --serve (whose first batch may come hours later,
// from dispatchers pointed at the published addresses). Only then has the
// state a first start rebuilds been seen by no dispatcher but ours, so it
// need not wait for another's POST on any rail (dispatch.Config.FreshKafka).
// A cluster named by KafkaBrokers is not the program's, unless the load
// run started it; a Redis named by REDIS_URL may be shared with a
// dispatcher on another Kafka cluster, whose start records this run never
// sees (a helper review reproduced a payee paid twice that way).
func ownsState(embedded bool, redisKind string, o Options) bool {
	ownKafka := embedded || (o.kafkaChild && !o.ExternalKafka)
	ownRedis := redisKind == "redis-server" || redisKind == "miniredis"
	return ownKafka && ownRedis && !o.Serve
}

// startTimeout bounds how long Start waits for one worker that neither
// starts nor stops (a dependency that hangs without an error).
const startTimeout = 30 * time.Second

// startWorker runs a worker in the background and waits until it calls
// started. It never blocks past the first of: the worker started; the
// worker returned (its error, or "exited before it started" for a nil one,
// which a Run returns when its context ends); another worker failed; ctx
// ended; startTimeout. A worker that fails later is reported on Err.
func (s *Stack) startWorker(ctx context.Context, name string, run func(ctx context.Context, started func()) error) error {
	up := make(chan struct{})
	var once sync.Once
	done := s.goRun(name, func(ctx context.Context) error {
		return run(ctx, func() { once.Do(func() { close(up) }) })
	}, ctx)
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-up:
		return nil
	case err := <-done:
		if err == nil {
			err = errors.New("exited before it started")
		}
		return fmt.Errorf("%s: %w", name, err)
	case err := <-s.errs:
		return fmt.Errorf("%s: not started: %w", name, err)
	case <-ctx.Done():
		return fmt.Errorf("%s: not started: %w", name, context.Cause(ctx))
	case <-timer.C:
		return fmt.Errorf("%s did not start within %v", name, startTimeout)
	}
}

// goRun runs a worker until ctx ends. The returned channel receives what
// its run returned, always; a failure while ctx is live also goes to Err.
func (s *Stack) goRun(name string, run func(context.Context) error, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := run(ctx)
		done <- err
		if err != nil && ctx.Err() == nil {
			s.log.Error("worker stopped", "worker", name, "err", err)
			select {
			case s.errs <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
	return done
}

// Err returns a channel that receives a worker's failure.
func (s *Stack) Err() <-chan error { return s.errs }

// Close drains the workers and stops everything the stack started.
func (s *Stack) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.log.Warn("workers did not drain within 30s")
	}
	if s.SmartFastPay != nil {
		s.SmartFastPay.Close()
	}
	if s.WEpayout != nil {
		s.WEpayout.Close()
	}
	if s.Sim != nil {
		s.Sim.Close()
	}
	if s.Redis != nil {
		s.Redis.Close()
	}
	if s.fake != nil {
		s.fake.Close()
	}
}

// callCounter counts Redis commands and round trips (a pipeline is one).
type callCounter struct {
	commands, roundTrips atomic.Int64
}

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.commands.Add(1)
		c.roundTrips.Add(1)
		return next(ctx, cmd)
	}
}

func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.commands.Add(int64(len(cmds)))
		c.roundTrips.Add(1)
		return next(ctx, cmds)
	}
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

func postJSON(ctx context.Context, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// Publisher produces the marketplace's requests.
type Publisher struct {
	cl      *kgo.Client
	codec   *events.Codec
	topic   string
	promise func(*kgo.Record, error)
	// The records, and their values and keys, are carved from chunks, each
	// freed once its last record is produced: a million requests' garbage
	// is collected on the workers' time, in the same process.
	buf  []byte
	recs []kgo.Record
}

// NewPublisher returns a producer of requests (acks=all, idempotent); a
// request it fails to produce is reported through onErr (never silently
// dropped).
func (s *Stack) NewPublisher(onErr func(error)) (*Publisher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(20_000), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		return nil, err
	}
	return &Publisher{cl: cl, codec: s.Codec, topic: s.Topics.Requests, promise: func(_ *kgo.Record, err error) {
		if err != nil {
			onErr(err)
		}
	}}, nil
}

// Publisher's chunk sizes.
const (
	publishChunk     = 1 << 20 // bytes of values and keys
	publishRecords   = 4096    // records
	publishRoomFloor = 4096    // a chunk with less room left is replaced
)

// Publish encodes and produces one request.
func (p *Publisher) Publish(ctx context.Context, r *payout.Request) error {
	// Bytes handed out are never written again: a new chunk replaces a
	// full one, and appends only write past the end.
	if cap(p.buf)-len(p.buf) < publishRoomFloor {
		p.buf = make([]byte, 0, publishChunk)
	}
	start := len(p.buf)
	buf, err := p.codec.AppendRequest(p.buf, r)
	if err != nil {
		return err
	}
	value := buf[start:len(buf):len(buf)]
	start = len(buf)
	p.buf = append(buf, r.RequestID...)
	key := p.buf[start:len(p.buf):len(p.buf)]
	if len(p.recs) == cap(p.recs) {
		p.recs = make([]kgo.Record, 0, publishRecords)
	}
	p.recs = append(p.recs, kgo.Record{Topic: p.topic, Key: key, Value: value})
	p.cl.Produce(ctx, &p.recs[len(p.recs)-1], p.promise)
	return nil
}

// PublishRaw produces undecodable bytes, for the DLQ.
func (p *Publisher) PublishRaw(ctx context.Context, key string, value []byte) {
	p.cl.Produce(ctx, &kgo.Record{Topic: p.topic, Key: []byte(key), Value: value}, nil)
}

// Flush waits for every published record.
func (p *Publisher) Flush(ctx context.Context) error { return p.cl.Flush(ctx) }

// Close closes the producer.
func (p *Publisher) Close() { p.cl.Close() }

// checkTopicsEmpty refuses a load run on topics that already hold records:
// an earlier run's requests and batches would be counted with this run's
// (a fresh Redis and simulator then pay them again, as after losing both),
// and the reconciliation would fail for a reason that is not the pipeline's.
func checkTopicsEmpty(ctx context.Context, brokers []string, t events.Topics) error {
	adm, ctx, done, err := adminClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer done()
	topics := []string{t.Requests, t.Batches, t.BatchesDeferred, t.Status, t.BatchStatus, t.RequestsDLQ, t.DispatcherStarts}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: list offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: list offsets: %w", err)
	}
	held := map[string]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && e.Err == nil && s.Err == nil {
			held[e.Topic] += e.Offset - s.Offset
		}
	})
	for _, topic := range topics {
		if n := held[topic]; n > 0 {
			return fmt.Errorf("load run: topic %s on %s already holds %d records (an earlier run?): a load run needs empty topics; start a fresh broker",
				topic, strings.Join(brokers, ","), n)
		}
	}
	return nil
}

// adminClient is an admin client of brokers and a context bounding its
// calls to 30 s; done closes both.
func adminClient(ctx context.Context, brokers []string) (*kadm.Client, context.Context, func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kafka: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	return kadm.NewClient(cl), ctx, func() { cancel(); cl.Close() }, nil
}

// ensureTopics creates the pipeline's topics on an external cluster with
// partitions each and the broker's default replication factor; a topic that
// exists is left as it is.
func ensureTopics(ctx context.Context, brokers []string, partitions int, t events.Topics) error {
	adm, ctx, done, err := adminClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.CreateTopics(ctx, int32(max(1, partitions)), -1, nil,
		t.Requests, t.Batches, t.BatchesDeferred, t.BatchStatus, t.RequestsDLQ)
	if err != nil {
		return fmt.Errorf("kafka: create topics on %s: %w", strings.Join(brokers, ","), err)
	}
	// The status topic keeps DEDUPE_WINDOW's REJECTED for a recovery.
	statuses, err := adm.CreateTopics(ctx, int32(max(1, partitions)), -1, map[string]*string{"retention.ms": kadm.StringPtr(statusRetention)}, t.Status)
	if err != nil {
		return fmt.Errorf("kafka: create topics on %s: %w", strings.Join(brokers, ","), err)
	}
	// The start records are kept for good (docs/operations.md): a
	// recovery after a Redis loss reads every rail they name.
	starts, err := adm.CreateTopics(ctx, 1, -1, map[string]*string{"retention.ms": kadm.StringPtr("-1")}, t.DispatcherStarts)
	if err != nil {
		return fmt.Errorf("kafka: create topics on %s: %w", strings.Join(brokers, ","), err)
	}
	for _, r := range append(append(resp.Sorted(), statuses.Sorted()...), starts.Sorted()...) {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// statusRetention is the status topic's retention.ms this program sets on
// the topics it creates, as docs/operations.md advises: more than
// DEDUPE_WINDOW, so that a recovery after a Redis loss finds every
// REJECTED of the window (dispatch's indexRejected).
const statusRetention = "5184000000" // 60 days

// keepStartRecords sets retention.ms=-1 on the start records' topic of a
// kfake cluster this process seeded (SeedTopics takes no configs), as
// docs/operations.md asks of every deployment; else the dispatcher logs,
// rightly, that a recovery could forget a rail.
func keepStartRecords(ctx context.Context, brokers []string, topic string) error {
	return setRetention(ctx, brokers, topic, "-1")
}

// setRetention sets topic's retention.ms to ms, leaving its other configs.
func setRetention(ctx context.Context, brokers []string, topic, ms string) error {
	adm, ctx, done, err := adminClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr(ms)}}, topic)
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = resp.On(topic, nil); err == nil && r.Err != nil {
			err = r.Err
			if r.ErrMessage != "" {
				err = fmt.Errorf("%w (%s)", r.Err, r.ErrMessage)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("kafka: keep the records of %s: %w", topic, err)
	}
	return nil
}
