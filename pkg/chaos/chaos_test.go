package chaos

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/localrun"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/testenv/apachekafka"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

var (
	flagSeeds    = flag.String("chaos.seeds", "", "comma-separated seeds (default: CHAOS_SEEDS, else 3 fixed seeds)")
	flagCount    = flag.Int("chaos.count", 0, "run this many random seeds instead (long soaks)")
	flagRequests = flag.Int("chaos.requests", 20000, "payout requests per seed")
	flagKeepLogs = flag.Bool("chaos.keep", false, "keep the process logs of every seed")
	flagDebug    = flag.Bool("chaos.debug", false, "run the workers at LOG_LEVEL=debug (adds franz-go's info lines)")
	flagRedisCl  = flag.String("chaos.rediscluster", "", "seeds that run on a three-master Redis Cluster: a comma list, or all (default: CHAOS_REDIS_CLUSTER_SEEDS, else seed 3)")
	flagNoReaper = flag.Bool("chaos.noreaper", false, "run the broker without its session reaper: reproduces kfake keeping members killed mid-join (pkg/kfakereaper)")
)

func seeds(t *testing.T) []uint64 {
	if *flagCount > 0 {
		out := make([]uint64, *flagCount)
		for i := range out {
			out[i] = rand.Uint64()
		}
		return out
	}
	spec := *flagSeeds
	if spec == "" {
		spec = os.Getenv("CHAOS_SEEDS")
	}
	if spec == "" {
		spec = "1,2,3"
	}
	var out []uint64
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			t.Fatalf("bad seed %q", s)
		}
		out = append(out, n)
	}
	return out
}

// onRedisCluster reports whether seed runs on a Redis Cluster.
func onRedisCluster(seed uint64) bool {
	spec := *flagRedisCl
	if spec == "" {
		spec = os.Getenv("CHAOS_REDIS_CLUSTER_SEEDS")
	}
	if spec == "" {
		spec = "3"
	}
	if spec == "all" {
		return true
	}
	for _, f := range strings.Split(spec, ",") {
		if n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64); err == nil && n == seed {
			return true
		}
	}
	return false
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: not in -short")
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		if _, err := execLookPath("redis-server"); err != nil {
			t.Fatal("the chaos suite needs redis-server on PATH")
		}
	}
	binDir := t.TempDir()
	ctx := context.Background()
	root, _ := filepath.Abs("../..")
	if err := Build(ctx, root, binDir); err != nil {
		t.Fatal(err)
	}
	for _, seed := range seeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			// The logs outlive the test when asked to, or when the seed
			// fails: they hold the goroutine dumps of a stall.
			logDir, err := os.MkdirTemp("", fmt.Sprintf("chaos-%d-", seed))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					logProblems(t, logDir)
				}
				if *flagKeepLogs || t.Failed() {
					t.Logf("logs in %s", logDir)
					return
				}
				os.RemoveAll(logDir)
			})
			// CI's seeds run on a real three-node Apache Kafka cluster,
			// fresh for each seed; without TEST_KAFKA=real or
			// TEST_REQUIRE_REAL_KAFKA=1, on the fake broker.
			var kafka *apachekafka.Cluster
			if testenv.WantRealKafka() {
				kafka = testenv.RealKafka(t, 3).Real()
				t.Logf("seed=%d on a real 3-node Apache Kafka cluster (started in %v)", seed, kafka.StartupTime().Round(time.Millisecond))
			}
			var redisCluster *RedisClusterSpec
			if onRedisCluster(seed) {
				rc := testenv.RedisCluster(t)
				redisCluster = &RedisClusterSpec{URL: rc.URL(), Masters: rc.Addrs()}
				t.Logf("seed=%d on a three-master Redis Cluster (%s)", seed, strings.Join(rc.Addrs(), ","))
			}
			res := runSeed(t, binDir, logDir, seed, *flagRequests, kafka, redisCluster)
			res.stalls = countLines(logDir, "ingest-", "ingest: stalled")
			res.reaped = countLines(logDir, "kfakebroker", "kfakereaper: removed")
			for _, l := range res.brokerLog {
				t.Log("broker fault: " + l)
			}
			t.Log(res.summary())
			fmt.Println(res.summary())
			if len(res.duplicates) > 0 || len(res.lost) > 0 || len(res.problems) > 0 {
				t.Errorf("seed=%d FAILED: paid twice %v; lost %v; problems %v", seed, first(res.duplicates), first(res.lost), first(res.problems))
			}
			auditLogs(t, logDir, res.pii)
		})
	}
}

func first(s []string) []string { return s[:min(len(s), 20)] }

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type result struct {
	seed               uint64
	requests, valid    int
	kills, flushes     int
	faults             int64
	duplicates, lost   []string
	problems           []string
	finals             map[payout.Status]int
	republished        int
	crossAccount       int           // copies republished under another origin account
	flushGap           time.Duration // between the two FLUSHALLs
	outage             time.Duration // of the API key (401 on every POST), as it was
	sim                wompitest.FaultCounts
	unfired            []string // new faults that never fired in this seed
	stalls             int      // ingest sessions its watchdog replaced
	reaped             int      // dead group members the broker's session reaper removed
	forged             int      // forged webhooks the tracker refused (401)
	kafka              string   // "real(3 nodes)" or "kfake"
	redis              string   // "redis-server" or "cluster(3 masters)"
	brokerKills        int      // partition leaders SIGKILLed (real Kafka)
	brokerRestarts     int      // brokers shut down in order and restarted (real Kafka)
	brokerLog          []string // what each broker fault hit
	elapsed, lastFinal time.Duration
	pii                []string       // values that must never appear in a log
	railPaid           map[string]int // requests paid through each single-payout rail
	railFaults         int64          // faults the single-payout rails' simulators injected
}

func (r *result) summary() string {
	unfired := "none"
	if len(r.unfired) > 0 {
		unfired = strings.Join(r.unfired, ",")
	}
	return fmt.Sprintf("seed=%d kafka=%s redis=%s broker_kills=%d broker_restarts=%d requests=%d kills=%d faults=%d duplicates=%d lost=%d (republished=%d republished_cross_account=%d flushes=%d flush_gap=%v "+
		"key_outage=%v unauthorized_posts=%d unauthorized_live_keys=%d late_rejects=%d dropped_answers=%d expired_key_reuses=%d unfired=%s "+
		"ingest_stalls=%d reaped=%d forged_refused=%d approved=%d failed=%d cancelled=%d rejected=%d returned=%d smartfastpay=%d wepayout=%d rail_faults=%d; last final status after %v; %v in all)",
		r.seed, r.kafka, r.redis, r.brokerKills, r.brokerRestarts, r.requests, r.kills, r.faults, len(r.duplicates), len(r.lost), r.republished, r.crossAccount, r.flushes, r.flushGap.Round(time.Millisecond),
		r.outage, r.sim.UnauthorizedPosts, r.sim.UnauthorizedLiveKeys, r.sim.LateRejects, r.sim.DroppedAnswers, r.sim.ExpiredKeyReuses, unfired,
		r.stalls, r.reaped, r.forged,
		r.finals[payout.StatusApproved], r.finals[payout.StatusFailed], r.finals[payout.StatusCancelled], r.finals[payout.StatusRejected],
		r.finals[payout.StatusReturned], r.railPaid["smartfastpay"], r.railPaid["wepayout"], r.railFaults,
		r.lastFinal.Round(time.Second), r.elapsed.Round(time.Second))
}

// otherAccount is a valid origin account of the simulator other than id.
// A copy under it is a valid request in its own right: only the duplicate
// index, across accounts, keeps it from being paid a second time. The
// secondary account has the lower daily limit, so copies go there only
// from the main one.
func otherAccount(id string) string {
	if id == wompitest.AccountMain {
		return wompitest.AccountSecondary
	}
	return wompitest.AccountMain
}

// runSeed runs one seed on kafka, a real cluster of three nodes whose
// brokers it kills and restarts, or (nil) on its own fake broker.
func runSeed(t *testing.T, binDir, logDir string, seed uint64, n int, kafka *apachekafka.Cluster, redisCluster *RedisClusterSpec) *result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(seed, 0xC4A05))
	opts := Options{BinDir: binDir, LogDir: logDir, Partitions: 6, Seed: seed, KafkaDebug: *flagDebug, NoReaper: *flagNoReaper}
	if kafka != nil {
		opts.Brokers = kafka.Brokers()
	}
	opts.RedisCluster = redisCluster
	c, err := StartCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := &result{seed: seed, requests: n, finals: map[payout.Status]int{}, kafka: "kfake", redis: "redis-server",
		railPaid: map[string]int{}}
	if redisCluster != nil {
		res.redis = fmt.Sprintf("cluster(%d masters)", len(redisCluster.Masters))
	}
	if kafka != nil {
		res.kafka = fmt.Sprintf("real(%d nodes)", kafka.Nodes())
	}

	if err := c.SetFaults(ctx, map[string]any{
		"errorRate": 0.05, "latency": "2ms", "latencyJitter": "20ms",
		"dropResponseRate": 0.05, "webhookDropRate": 0.05, "webhookDuplicateRate": 0.05, "webhookDelayRate": 0.05,
		// A retry after a lost answer meets a validation that changed
		// (400) as often as the 409 of its live key.
		"lateRejectRate": 0.5,
	}); err != nil {
		t.Fatal(err)
	}

	codec, err := events.NewCodec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.DefaultProduceTopic(events.DefaultTopicRequests))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	// The marketplace: immediate payouts, invalid ones, bank refusals and
	// cancellations; a share published twice.
	// A share goes through the single-payout rails (their simulators'
	// faults are on from the start).
	m := localrun.NewMarketplace(fmt.Sprintf("c%d", seed), seed,
		localrun.Mix{Invalid: 5, BankFails: 5, Cancelled: 2, SmartFastPay: 6, WEpayout: 6}, time.Now)
	reqs := make([]payout.Request, n)
	kinds := make([]localrun.Kind, n)
	for i := range reqs {
		kinds[i] = m.Next(i, &reqs[i])
		res.pii = append(res.pii, reqs[i].Beneficiary.Email)
		if a := reqs[i].Beneficiary.AccountNumber; a != "" {
			res.pii = append(res.pii, a)
		}
		for _, v := range []*string{reqs[i].Beneficiary.Phone, reqs[i].Beneficiary.PixKey} {
			if v != nil {
				res.pii = append(res.pii, *v)
			}
		}
		if len(reqs[i].Beneficiary.LegalID) >= 8 {
			res.pii = append(res.pii, reqs[i].Beneficiary.LegalID)
		}
	}
	publishFor := 25 * time.Second
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	var pubErr error
	var pubMu sync.Mutex
	go func() {
		defer pubWG.Done()
		// Its own dice: the chaos schedule below draws from rng concurrently.
		rng := rand.New(rand.NewPCG(seed, 0x9B11))
		// And its own for the copies under another origin account, so
		// that the same-account republishes stay those of earlier runs.
		crng := rand.New(rand.NewPCG(seed, 0xAC07))
		per := publishFor / time.Duration(n)
		next := time.Now()
		var republish, cross []int
		publishCross := func(j int) {
			cp := reqs[j]
			cp.OriginAccountID = otherAccount(cp.OriginAccountID)
			v, _ := codec.AppendRequest(nil, &cp)
			prod.Produce(ctx, &kgo.Record{Key: []byte(cp.RequestID), Value: v}, nil)
			res.crossAccount++
		}
		for i := range reqs {
			v, err := codec.AppendRequest(nil, &reqs[i])
			if err != nil {
				pubMu.Lock()
				pubErr = err
				pubMu.Unlock()
				return
			}
			prod.Produce(ctx, &kgo.Record{Key: []byte(reqs[i].RequestID), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					pubMu.Lock()
					pubErr = err
					pubMu.Unlock()
				}
			})
			if rng.IntN(100) < 3 {
				republish = append(republish, i)
			}
			// Republish some earlier requests a little later, as an upstream
			// retry would.
			if len(republish) > 0 && rng.IntN(20) == 0 {
				j := republish[0]
				republish = republish[1:]
				v, _ := codec.AppendRequest(nil, &reqs[j])
				prod.Produce(ctx, &kgo.Record{Key: []byte(reqs[j].RequestID), Value: v}, nil)
				res.republished++
			}
			// About 1% of the valid requests again under another origin
			// account (an invalid one would be refused by ingest anyway).
			if kinds[i] != localrun.KindInvalid && crng.IntN(100) == 0 {
				cross = append(cross, i)
			}
			if len(cross) > 0 && crng.IntN(20) == 0 {
				publishCross(cross[0])
				cross = cross[1:]
			}
			next = next.Add(per)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		for _, j := range republish {
			v, _ := codec.AppendRequest(nil, &reqs[j])
			prod.Produce(ctx, &kgo.Record{Key: []byte(reqs[j].RequestID), Value: v}, nil)
			res.republished++
		}
		for _, j := range cross {
			publishCross(j)
		}
		if err := prod.Flush(ctx); err != nil {
			pubMu.Lock()
			pubErr = err
			pubMu.Unlock()
		}
	}()

	// The chaos schedule.
	chaosFor := publishFor + 10*time.Second
	flushAt := time.Duration(float64(publishFor) * (0.3 + 0.4*rng.Float64()))
	// The second flush lands while the first one's recovery runs (its
	// grace period is 3 s): workers are mid-claim on an epoch that is being
	// rebuilt, and the recovering replica loses its lock and its epoch.
	res.flushGap = time.Duration(100+rng.IntN(701)) * time.Millisecond
	// The API key breaks for longer than an idempotency key lives, right
	// after a burst of lost answers: the batches whose answer was lost
	// retry into 401s until their key has expired at Wompi.
	outageFor := IdempotencyTTL + 10*time.Second
	outageAt := time.Duration(float64(publishFor) * (0.2 + 0.25*rng.Float64()))
	chaosStart := time.Now()
	outageDone, stopOutage := make(chan struct{}), make(chan struct{})
	var outageOn atomic.Bool
	go func() {
		defer close(outageDone)
		step := func(at time.Duration, faults map[string]any) bool {
			select {
			case <-time.After(time.Until(chaosStart.Add(at))):
			case <-stopOutage:
				return false
			}
			if err := c.SetFaults(ctx, faults); err != nil {
				t.Errorf("API-key outage: %v", err)
				return false
			}
			return true
		}
		// Half the answers lost for 2 s, then the outage armed: it starts
		// at the next lost answer, so at least that batch retries into it
		// with its key live.
		if !step(outageAt-2*time.Second, map[string]any{"dropResponseRate": 0.5}) ||
			!step(outageAt, map[string]any{"dropResponseRate": 0.05, "postUnauthorizedAfterDrop": true}) {
			return
		}
		for {
			var f struct {
				On bool `json:"postUnauthorized"`
			}
			if err := c.GetJSON(ctx, "/_sim/faults", &f); err != nil {
				t.Errorf("API-key outage: %v", err)
				return
			}
			if f.On {
				break
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-stopOutage:
				return
			}
		}
		began := time.Since(chaosStart)
		outageOn.Store(true)
		defer outageOn.Store(false)
		if step(began+outageFor, map[string]any{"postUnauthorized": false, "postUnauthorizedAfterDrop": false}) {
			res.outage = time.Since(chaosStart) - began
		}
	}()
	defer func() { close(stopOutage); <-outageDone }()
	brokersDone := make(chan struct{})
	if kafka != nil {
		// Its own dice, so the worker kills stay those of the fake broker's
		// runs of the same seed.
		brng := rand.New(rand.NewPCG(seed, 0xB40CE5))
		go func() {
			defer close(brokersDone)
			brokerFaults(ctx, t, kafka, brng, chaosStart, publishFor, res)
		}()
	} else {
		close(brokersDone)
	}
	defer func() { <-brokersDone }()
	flushed := false
	for time.Since(chaosStart) < chaosFor {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		if !flushed && time.Since(chaosStart) > flushAt {
			if err := c.FlushRedis(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			time.Sleep(res.flushGap)
			if err := c.FlushRedis(ctx); err != nil {
				t.Fatalf("second flush: %v", err)
			}
			flushed = true
			res.flushes += 2
			continue
		}
		w := c.Workers[rng.IntN(len(c.Workers))]
		if outageOn.Load() && strings.HasPrefix(w.Name, "dispatcher") {
			// The dispatchers ride the outage out unkilled, as over a
			// weekend: a kill would hand the batch to a new owner, whose
			// resume looks it up, and hide a retry loop that outlives
			// the key. Another worker dies instead.
			var others []*Proc
			for _, o := range c.Workers {
				if !strings.HasPrefix(o.Name, "dispatcher") {
					others = append(others, o)
				}
			}
			w = others[rng.IntN(len(others))]
		}
		w.Kill()
		res.kills++
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		w.Restarts++
	}
	pubWG.Wait()
	if pubErr != nil {
		t.Fatalf("publish: %v", pubErr)
	}
	<-brokersDone // every broker is back before the run heals

	// Heal: the kills are over and every worker is up. The Wompi faults
	// stay until half the requests have ended: a storm of kills can keep a
	// consumer group rebalancing for its whole length, and the faults must
	// meet real traffic whatever the kills did. Then every request must end.
	healed := false
	heal := func() {
		if err := c.SetFaults(ctx, map[string]any{"errorRate": 0, "latency": "0s", "latencyJitter": "0s", "dropResponseRate": 0,
			"webhookDropRate": 0, "webhookDuplicateRate": 0, "webhookDelayRate": 0, "lateRejectRate": 0}); err != nil {
			t.Fatal(err)
		}
		for _, root := range []string{c.SmartFastPayRoot, c.WEpayoutRoot} {
			if err := c.SetRailFaults(ctx, root, map[string]any{"errorRate": 0, "latency": "0s", "latencyJitter": "0s",
				"dropResponseRate": 0, "webhookDropRate": 0, "webhookDuplicateRate": 0, "webhookDelayRate": 0}); err != nil {
				t.Fatal(err)
			}
		}
		healed = true
	}
	// Follow the status topic until every request has a final status.
	follow, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.ConsumeTopics(events.DefaultTopicStatus),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	type life struct {
		events []payout.StatusChange
		finals map[payout.Status]bool
	}
	lives := make(map[string]*life, n)
	index := make(map[string]int, n)
	for i := range reqs {
		lives[reqs[i].RequestID] = &life{finals: map[payout.Status]bool{}}
		index[reqs[i].RequestID] = i
	}
	finished := 0
	forged := false
	forge := func() {
		// Once a quarter of the requests ended, an attacker holding one
		// genuine event forges others (issue #15): each must get 401.
		var ledger struct {
			Transactions map[string]wompitest.LedgerEntry `json:"transactions"`
		}
		if err := c.GetJSON(ctx, "/_sim/ledger", &ledger); err != nil {
			res.problems = append(res.problems, "forge: "+err.Error())
			return
		}
		var targets []ForgeTarget
		for _, e := range ledger.Transactions {
			if e.Accepted == 1 && len(targets) < 2 {
				targets = append(targets, ForgeTarget{TransactionID: e.TransactionIDs[0], PayoutID: e.PayoutIDs[0], AmountInCents: e.AmountsInCents[0]})
			}
		}
		if len(targets) < 2 {
			res.problems = append(res.problems, "forge: fewer than two transactions in Wompi")
			return
		}
		n, probs := c.ForgeProbes(ctx, targets[0], targets[1])
		res.forged += n
		res.problems = append(res.problems, probs...)
	}
	// Every request must reach a final status within this. The key outage
	// defers every batch it refuses; their copies, read with keys past
	// KeyMaxAge, each wait out the fence (lease plus grace, about 7 s)
	// before their lookup, one after another on a partition, and the
	// deferred topic's partitions take them unevenly: one seed (2) had 27
	// on one partition, over 3 minutes, and ended 76 requests DEFERRED at
	// 4 minutes. Slow, not stalled: 6 minutes.
	deadline := time.Now().Add(6 * time.Minute)
	for finished < n && time.Now().Before(deadline) {
		if !forged && finished >= n/4 {
			forged = true
			forge()
		}
		if !healed && finished >= n/2 && closed(outageDone) {
			heal()
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := follow.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			var sc payout.StatusChange
			if err := codec.DecodeStatusChange(r.Value, &sc); err != nil {
				res.problems = append(res.problems, "undecodable status event: "+err.Error())
				return
			}
			l := lives[sc.RequestID]
			if l == nil {
				res.problems = append(res.problems, "status event for an unknown request "+sc.RequestID)
				return
			}
			l.events = append(l.events, sc)
			if sc.Status.Final() {
				if len(l.finals) == 0 {
					finished++
				}
				l.finals[sc.Status] = true
			}
		})
	}
	res.lastFinal = time.Since(start)
	// A SmartFastPay payout may be refunded after it was paid: RETURNED
	// follows APPROVED about a second later, later when its webhook is
	// retried or the broker is slow. Follow at least 5 s, then until every
	// refund the simulator made has its RETURNED on the topic (at most a
	// minute): a fixed 5 s read the ledger's refund while the topic's last
	// word was still APPROVED.
	refundsFollowed := func() bool {
		var l struct {
			Transactions map[string]sfptest.LedgerEntry `json:"transactions"`
		}
		if err := c.GetJSONAt(ctx, c.SmartFastPayRoot, "/_sim/ledger", &l); err != nil {
			return false
		}
		for id, e := range l.Transactions {
			if n := len(e.Statuses); n > 0 && (e.Statuses[n-1] == "refunded" || e.Statuses[n-1] == "returned") {
				if lv := lives[id]; lv != nil && !lv.finals[payout.StatusReturned] {
					return false
				}
			}
		}
		return true
	}
	for at := time.Now(); ; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := follow.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			var sc payout.StatusChange
			if err := codec.DecodeStatusChange(r.Value, &sc); err != nil {
				res.problems = append(res.problems, "undecodable status event: "+err.Error())
				return
			}
			if l := lives[sc.RequestID]; l != nil {
				l.events = append(l.events, sc)
				if sc.Status.Final() {
					l.finals[sc.Status] = true
				}
			}
		})
		if since := time.Since(at); since >= 5*time.Second && (since >= time.Minute || refundsFollowed()) {
			break
		}
	}

	// The faults injected over the run (webhook faults are rolled when an
	// event is queued, so they are counted at the end).
	var stats struct {
		Faults   wompitest.FaultCounts  `json:"faults"`
		Webhooks wompitest.WebhookStats `json:"webhooks"`
	}
	if err := c.GetJSON(ctx, "/_sim/stats", &stats); err != nil {
		t.Fatal(err)
	}
	res.sim = stats.Faults
	res.faults = stats.Faults.Errors + stats.Faults.TooManyRequests + stats.Faults.DroppedAnswers +
		stats.Faults.UnauthorizedPosts + stats.Faults.LateRejects +
		stats.Webhooks.Dropped + stats.Webhooks.Duplicated + stats.Webhooks.Delayed
	// The fault combinations behind the money-safety rules: a seed where
	// one never fired tested less than it claims, and says so.
	for _, f := range []struct {
		name  string
		fired bool
	}{
		{"republished_cross_account", res.crossAccount > 0},
		{"unauthorized_posts", stats.Faults.UnauthorizedPosts > 0},
		{"unauthorized_live_keys", stats.Faults.UnauthorizedLiveKeys > 0},
		{"late_rejects", stats.Faults.LateRejects > 0},
		{"broker_leader_kills", kafka == nil || res.brokerKills >= 2},
		{"broker_restarts", kafka == nil || res.brokerRestarts >= 1},
	} {
		if !f.fired {
			res.unfired = append(res.unfired, f.name)
		}
	}
	if stats.Faults.ExpiredKeyReuses > 0 {
		// A POST went out with a key Wompi had forgotten, and created the
		// batch a second time.
		res.problems = append(res.problems, fmt.Sprintf("%d payouts were created under an idempotency key that had expired (%v) after creating one", stats.Faults.ExpiredKeyReuses, IdempotencyTTL))
	}
	if res.faults == 0 {
		// At 5% of tens of thousands of calls and webhooks, none at all
		// means the faults were never in force: the seed tested nothing.
		res.problems = append(res.problems, fmt.Sprintf("the simulator reports no injected fault: %+v", stats))
	}
	if finished < n {
		diagnoseStall(t, ctx, c.Brokers)
		// Every worker dumps its goroutines into its log (SIGQUIT), to show
		// where it waits.
		for _, w := range c.Workers {
			w.Signal(syscall.SIGQUIT)
		}
		time.Sleep(time.Second)
	}

	// The oracle.
	var ledger struct {
		Transactions     map[string]wompitest.LedgerEntry `json:"transactions"`
		PaidMoreThanOnce []string                         `json:"paidMoreThanOnce"`
	}
	if err := c.GetJSON(ctx, "/_sim/ledger", &ledger); err != nil {
		t.Fatal(err)
	}
	res.duplicates = append(res.duplicates, ledger.PaidMoreThanOnce...)
	for ref, e := range ledger.Transactions {
		if e.Accepted > 1 && !slices.Contains(res.duplicates, ref) {
			res.duplicates = append(res.duplicates, ref) // accepted twice, even if not (yet) paid twice
		}
	}
	// The single-payout rails' ledgers: a create sent twice for one id is a
	// double payment there (they deduplicate nothing).
	var sfpLedger struct {
		Transactions     map[string]sfptest.LedgerEntry `json:"transactions"`
		Duplicates       []string                       `json:"duplicates"`
		PaidMoreThanOnce []string                       `json:"paidMoreThanOnce"`
	}
	var wepLedger struct {
		Invoices         map[string]weptest.LedgerEntry `json:"invoices"`
		Duplicates       []string                       `json:"duplicates"`
		PaidMoreThanOnce []string                       `json:"paidMoreThanOnce"`
	}
	if err := c.GetJSONAt(ctx, c.SmartFastPayRoot, "/_sim/ledger", &sfpLedger); err != nil {
		t.Fatal(err)
	}
	if err := c.GetJSONAt(ctx, c.WEpayoutRoot, "/_sim/ledger", &wepLedger); err != nil {
		t.Fatal(err)
	}
	for _, ids := range [][]string{sfpLedger.Duplicates, sfpLedger.PaidMoreThanOnce, wepLedger.Duplicates, wepLedger.PaidMoreThanOnce} {
		for _, id := range ids {
			if !slices.Contains(res.duplicates, id) {
				res.duplicates = append(res.duplicates, id)
			}
		}
	}
	for _, r := range []struct{ name, root string }{{"smartfastpay", c.SmartFastPayRoot}, {"wepayout", c.WEpayoutRoot}} {
		var st struct {
			Faults struct {
				Errors, TooManyRequests, DroppedAnswers int64
			} `json:"faults"`
			Webhooks struct {
				Dropped, Duplicated, Delayed int64
			} `json:"webhooks"`
		}
		if err := c.GetJSONAt(ctx, r.root, "/_sim/stats", &st); err != nil {
			t.Fatal(err)
		}
		n := st.Faults.Errors + st.Faults.TooManyRequests + st.Faults.DroppedAnswers + st.Webhooks.Dropped + st.Webhooks.Duplicated + st.Webhooks.Delayed
		res.railFaults += n
		if n == 0 {
			res.unfired = append(res.unfired, r.name+"_faults")
		}
		if st.Faults.DroppedAnswers == 0 {
			res.unfired = append(res.unfired, r.name+"_dropped_answers")
		}
	}
	// The batch status topic: a batch Wompi accepted never reads REJECTED
	// (a refusal given up unanswered landing after the next attempt's
	// POST), and each batch's statuses only move forward.
	accepted := map[string]bool{}
	for _, e := range ledger.Transactions {
		for _, b := range e.BatchReferences {
			accepted[b] = true
		}
	}
	res.problems = append(res.problems, checkBatchStatuses(t, ctx, c.Brokers, codec, accepted)...)
	// Name the batches that carried each one: with the dispatcher logs
	// (batch_id), they say which path paid it twice.
	slices.Sort(res.duplicates)
	for i, ref := range res.duplicates {
		if e, ok := ledger.Transactions[ref]; ok {
			res.duplicates[i] = fmt.Sprintf("%s (batches %s)", ref, strings.Join(e.BatchReferences, " "))
		}
	}
	for id, l := range lives {
		i := index[id]
		r := &reqs[i]
		valid := kinds[i] != localrun.KindInvalid
		if valid {
			res.valid++
		}
		if len(l.finals) == 2 && l.finals[payout.StatusApproved] && l.finals[payout.StatusReturned] {
			delete(l.finals, payout.StatusApproved) // paid, then returned: RETURNED is the last word
		}
		switch len(l.finals) {
		case 0:
			// The last status it reached says where it stopped.
			last := "no event"
			if n := len(l.events); n > 0 {
				ev := l.events[n-1]
				last = string(ev.Status) + " from " + string(ev.Source)
				if ev.ReasonCode != nil {
					last += " " + *ev.ReasonCode
				}
			}
			res.lost = append(res.lost, id+" ("+last+")")
			continue
		case 1:
		default:
			res.problems = append(res.problems, fmt.Sprintf("%s has %d final statuses %v", id, len(l.finals), keys(l.finals)))
		}
		var final payout.Status
		for s := range l.finals {
			final = s
		}
		res.finals[final]++
		approved := checkEvents(id, l.events, &res.problems)
		if k := kinds[i]; k == localrun.KindSmartFastPay || k == localrun.KindWEpayout {
			checkSinglePayout(id, r, k, final, approved, sfpLedger.Transactions, wepLedger.Invoices, res)
			continue
		}
		e, accepted := ledger.Transactions[id]
		switch {
		case !valid && (final != payout.StatusRejected || accepted):
			res.problems = append(res.problems, fmt.Sprintf("invalid %s ended %s (accepted by Wompi: %v)", id, final, accepted))
		case valid && !accepted:
			res.problems = append(res.problems, fmt.Sprintf("valid %s ended %s but Wompi never accepted it", id, final))
		case valid:
			if e.AmountsInCents[0] != r.AmountInCents {
				res.problems = append(res.problems, fmt.Sprintf("%s: Wompi got %d cents, requested %d", id, e.AmountsInCents[0], r.AmountInCents))
			}
			want := map[string]payout.Status{"APPROVED": payout.StatusApproved, "FAILED": payout.StatusFailed, "CANCELLED": payout.StatusCancelled}[string(e.Statuses[len(e.Statuses)-1])]
			if final != want {
				res.problems = append(res.problems, fmt.Sprintf("%s: status topic says %s, Wompi says %s", id, final, e.Statuses[len(e.Statuses)-1]))
			}
			if final == payout.StatusApproved && approved != r.AmountInCents {
				res.problems = append(res.problems, fmt.Sprintf("%s: APPROVED event carries %d cents, requested %d", id, approved, r.AmountInCents))
			}
		}
	}
	sort.Strings(res.lost)
	if len(res.duplicates)+len(res.lost)+len(res.problems) > 0 {
		// The whole verdict, beside the logs (the failure message holds
		// the first 20 of each).
		var b strings.Builder
		for _, part := range []struct {
			name string
			list []string
		}{{"paid twice", res.duplicates}, {"lost", res.lost}, {"problem", res.problems}} {
			for _, v := range part.list {
				fmt.Fprintf(&b, "%s: %s\n", part.name, v)
			}
		}
		if err := os.WriteFile(filepath.Join(logDir, "oracle.txt"), []byte(b.String()), 0o644); err != nil {
			t.Log(err)
		}
	}
	res.elapsed = time.Since(start)
	return res
}

// checkBatchStatuses reads payouts.batch-status.v1 to its end (committed
// records) and returns its problems: a batch REJECTED there that Wompi
// accepted (accepted: batch ids, the references of Wompi's ledger), two
// final statuses of one batch, or a status that does not move forward from
// the one before it (an event seen again under its eventId is the same
// event, re-emitted).
func checkBatchStatuses(t *testing.T, ctx context.Context, brokers []string, codec *events.Codec, accepted map[string]bool) (problems []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	end, err := kadm.NewClient(cl).ListEndOffsets(ctx, events.DefaultTopicBatchStatus)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	var parts []int32
	end.Each(func(o kadm.ListedOffset) { parts = append(parts, o.Partition) })
	seen := map[string]bool{}
	last := map[string]payout.BatchStatus{}
	finals := map[string]payout.BatchStatus{}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := events.Scan(sctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, events.DefaultTopicBatchStatus, parts, nil, func(r *kgo.Record) error {
		var bs payout.BatchStatusChange
		if err := codec.DecodeBatchStatusChange(r.Value, &bs); err != nil {
			problems = append(problems, "undecodable batch status event: "+err.Error())
			return nil
		}
		if seen[bs.EventID] {
			return nil
		}
		seen[bs.EventID] = true
		id := bs.BatchID
		if bs.Status == payout.BatchRejected && accepted[id] {
			problems = append(problems, fmt.Sprintf("batch %s is REJECTED on %s, and Wompi accepted it", id, events.DefaultTopicBatchStatus))
		}
		if prev, ok := last[id]; ok && prev != bs.Status && !payout.BatchBeyond(prev, bs.Status) {
			problems = append(problems, fmt.Sprintf("batch %s went from %s to %s on %s", id, prev, bs.Status, events.DefaultTopicBatchStatus))
		}
		last[id] = bs.Status
		if bs.Status.Final() {
			if f, ok := finals[id]; ok && f != bs.Status {
				problems = append(problems, fmt.Sprintf("batch %s has two final statuses, %s and %s", id, f, bs.Status))
			}
			finals[id] = bs.Status
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", events.DefaultTopicBatchStatus, err)
	}
	t.Logf("batch status topic: %d records, %d events of %d batches checked", st.Records, len(seen), len(last))
	return problems
}

// checkSinglePayout checks a request of a single-payout rail against its
// simulator's ledger: created once, for its amount, and the status topic's
// final status is the provider's.
func checkSinglePayout(id string, r *payout.Request, k localrun.Kind, final payout.Status, approved int64,
	sfp map[string]sfptest.LedgerEntry, wep map[string]weptest.LedgerEntry, res *result) {
	var amounts []int64
	var last string
	var want payout.Status
	name := "wepayout"
	if k == localrun.KindSmartFastPay {
		name = "smartfastpay"
		e, ok := sfp[id]
		if ok && len(e.Statuses) > 0 {
			amounts, last = e.AmountsInCents, e.Statuses[len(e.Statuses)-1]
			want = map[string]payout.Status{"success": payout.StatusApproved, "failed": payout.StatusFailed,
				"refunded": payout.StatusReturned, "returned": payout.StatusReturned}[last]
		}
	} else if e, ok := wep[id]; ok && len(e.Statuses) > 0 {
		amounts, last = e.AmountsInCents, strconv.Itoa(e.Statuses[len(e.Statuses)-1])
		want = map[string]payout.Status{"3": payout.StatusApproved, "4": payout.StatusFailed, "5": payout.StatusFailed,
			"6": payout.StatusCancelled}[last]
	}
	switch {
	case len(amounts) == 0:
		if final != payout.StatusRejected {
			res.problems = append(res.problems, fmt.Sprintf("%s ended %s but %s never created it", id, final, name))
		}
		return
	case amounts[0] != r.AmountInCents:
		res.problems = append(res.problems, fmt.Sprintf("%s: %s got %d cents, requested %d", id, name, amounts[0], r.AmountInCents))
	case final != want:
		res.problems = append(res.problems, fmt.Sprintf("%s: status topic says %s, %s says %s", id, final, name, last))
	case final == payout.StatusApproved && approved != r.AmountInCents:
		res.problems = append(res.problems, fmt.Sprintf("%s: APPROVED event carries %d cents, requested %d", id, approved, r.AmountInCents))
	}
	res.railPaid[name]++
}

// brokerFaults is the real cluster's share of the chaos schedule, one
// fault at a time so that two of the three replicas (min.insync.replicas)
// always remain: the leader of a partition of the requests topic is
// SIGKILLed mid-publish and started again a few seconds later, then the
// leader of a partition of the batches topic, then a broker is shut down
// in order and restarted. Between faults every partition is back in sync.
func brokerFaults(ctx context.Context, t *testing.T, kafka *apachekafka.Cluster, rng *rand.Rand, start time.Time, publishFor time.Duration, res *result) {
	wait := func(at time.Duration) bool {
		select {
		case <-time.After(time.Until(start.Add(at))):
			return true
		case <-ctx.Done():
			return false
		}
	}
	inSync := func() {
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		for _, topic := range Topics {
			if err := kafka.WaitInSync(sctx, topic); err != nil {
				t.Errorf("broker faults: %s not back in sync: %v", topic, err)
				return
			}
		}
	}
	killLeader := func(topic string) {
		part := int32(rng.IntN(6))
		leader, err := kafka.LeaderOf(ctx, topic, part)
		if err != nil {
			t.Errorf("broker faults: leader of %s[%d]: %v", topic, part, err)
			return
		}
		if err := kafka.KillNode(leader); err != nil {
			t.Errorf("broker faults: kill node %d: %v", leader, err)
			return
		}
		res.brokerKills++
		down := time.Duration(3000+rng.IntN(5000)) * time.Millisecond
		res.brokerLog = append(res.brokerLog, fmt.Sprintf("SIGKILL node %d (leader of %s[%d]) at %v for %v", kafka.NodeID(leader), topic, part, time.Since(start).Round(time.Millisecond), down))
		time.Sleep(down)
		if err := kafka.RestartNode(ctx, leader); err != nil {
			t.Errorf("broker faults: start node %d again: %v", leader, err)
			return
		}
		inSync()
	}
	if !wait(time.Duration(float64(publishFor) * (0.1 + 0.2*rng.Float64()))) {
		return
	}
	killLeader(Topics[0]) // payouts.requests.v1
	if !wait(time.Duration(float64(publishFor) * (0.5 + 0.2*rng.Float64()))) {
		return
	}
	killLeader(Topics[1]) // payouts.batches.v1
	if !wait(time.Duration(float64(publishFor) * (0.8 + 0.2*rng.Float64()))) {
		return
	}
	node := rng.IntN(kafka.Nodes())
	res.brokerLog = append(res.brokerLog, fmt.Sprintf("restart node %d at %v", kafka.NodeID(node), time.Since(start).Round(time.Millisecond)))
	if err := kafka.RestartNode(ctx, node); err != nil {
		t.Errorf("broker faults: restart node %d: %v", node, err)
		return
	}
	res.brokerRestarts++
	inSync()
}

// diagnoseStall logs, for a run that did not finish, where Kafka holds
// things back: partitions whose last stable offset trails the high
// watermark (an open transaction), the producers holding them, and the
// consumer groups' lag.
func diagnoseStall(t *testing.T, ctx context.Context, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := []string{events.DefaultTopicRequests, events.DefaultTopicBatches, events.DefaultTopicStatus, events.DefaultTopicBatchStatus}
	hwm, _ := adm.ListEndOffsets(ctx, topics...)
	lso, _ := adm.ListCommittedOffsets(ctx, topics...)
	hwm.Each(func(o kadm.ListedOffset) {
		if l, ok := lso.Lookup(o.Topic, o.Partition); ok && l.Offset < o.Offset {
			t.Logf("stall: %s[%d] last stable offset %d < high watermark %d", o.Topic, o.Partition, l.Offset, o.Offset)
		}
	})
	if ps, err := adm.DescribeProducers(ctx, nil); err == nil {
		ps.EachProducer(func(p kadm.DescribedProducer) {
			if p.CurrentTxnStartOffset >= 0 {
				t.Logf("stall: open transaction on %s[%d] from producer %d epoch %d since offset %d", p.Topic, p.Partition, p.ProducerID, p.ProducerEpoch, p.CurrentTxnStartOffset)
			}
		})
	}
	if lags, err := adm.Lag(ctx, "payouts-ingest", "payouts-dispatcher"); err == nil {
		for g, l := range lags {
			for topic, tl := range l.Lag.TotalByTopic() {
				t.Logf("stall: group %s (%s) lag on %s: %d", g, l.State, topic, tl.Lag)
			}
		}
	}
}

// checkEvents checks one request's events against the status topic's
// contract: one forward-only lifecycle per requestId after dedupe by
// eventId (payout.CheckLifecycles: a republished copy never adds an event),
// and a status never carries two different eventIds (a re-emission, even
// after a Redis flush, reuses the id; DEFERRED is per attempt). It returns
// the amount of the APPROVED event.
func checkEvents(id string, evs []payout.StatusChange, problems *[]string) (approved int64) {
	if err := payout.CheckLifecycles(evs); err != nil {
		*problems = append(*problems, err.Error())
	}
	ids := map[payout.Status]map[string]bool{}
	for _, sc := range evs {
		if ids[sc.Status] == nil {
			ids[sc.Status] = map[string]bool{}
		}
		ids[sc.Status][sc.EventID] = true
		if sc.Status == payout.StatusApproved {
			approved = sc.AmountInCents
		}
	}
	for s, set := range ids {
		if len(set) > 1 && s != payout.StatusDeferred {
			*problems = append(*problems, fmt.Sprintf("%s: %d different eventIds for %s", id, len(set), s))
		}
	}
	return approved
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// containsToken reports whether v appears in s as a whole token: not as
// the middle of a longer run of letters and digits (a hash, a timestamp).
func containsToken(s, v string) bool {
	alnum := func(b byte) bool { return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }
	for from := 0; ; {
		i := strings.Index(s[from:], v)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(v)
		if (i == 0 || !alnum(s[i-1])) && (end == len(s) || !alnum(s[end])) {
			return true
		}
		from = i + 1
	}
}

var secretRE = regexp.MustCompile(regexp.QuoteMeta(APIKey) + "|" + regexp.QuoteMeta(PrincipalID) + "|" + regexp.QuoteMeta(EventsSecret))

// logProblems logs the last warnings and errors of each worker's log, so
// that a failure in CI shows where the workers were stuck.
func logProblems(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*-[0-9].log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var last []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				last = append(last, line)
				if len(last) > 8 {
					last = last[1:]
				}
			}
		}
		for _, line := range last {
			t.Logf("%s: %.400s", filepath.Base(f), line)
		}
	}
}

// countLines counts the lines holding substr in the logs whose names start
// with prefix.
func countLines(dir, prefix, substr string) int {
	files, _ := filepath.Glob(filepath.Join(dir, prefix+"*.log"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n += bytes.Count(b, []byte(substr))
	}
	return n
}

// auditLogs asserts the logs of a full run hold no secret and no personal
// data: API key, principal id, events secret, legal ids, full account
// numbers, emails.
func auditLogs(t *testing.T, dir string, pii []string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(files) == 0 {
		t.Fatal("no process logs captured")
	}
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := secretRE.Find(b); m != nil {
			t.Errorf("%s leaks a secret", filepath.Base(f))
		}
		all.Write(b)
	}
	logs := all.String()
	if len(logs) < 1000 {
		t.Fatalf("the logs are suspiciously short (%d bytes): nothing was audited", len(logs))
	}
	leaks := 0
	for _, v := range pii {
		if len(v) < 8 || strings.Count(v, v[:1]) == len(v) {
			continue // too short or trivial to be a finding (e.g. the invalid "0000000")
		}
		// The workers log JSON, where an identifier is a string: a numeric
		// legal id or account number leaks as "1234…", while the same
		// digits unquoted are an amount or a timestamp.
		needle := v
		if strings.Trim(v, "0123456789") == "" {
			needle = `"` + v + `"`
		}
		if containsToken(logs, needle) {
			if leaks < 5 {
				t.Errorf("the logs contain personal data (%d chars starting %q)", len(v), v[:min(3, len(v))])
			}
			leaks++
		}
	}
	if leaks > 0 {
		t.Errorf("%d personal values found in the logs", leaks)
	}
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }
