package track

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// TestStatusReadBeforeRedisLossIsNotEmitted on a Redis Cluster, where the
// loss hits only the master of the request's status key: the epoch
// marker, on another master, survives it. A poll reads PENDING, a
// webhook's APPROVED is emitted, the status key's master restarts empty,
// then the poll's PENDING finds an empty key under an unchanged marker.
// Emitted, it follows APPROVED on the status topic.
//
// The loss is a restart without persistence (another run id), or a
// FLUSHALL sent to that master alone (redis-cli -c sends it to one node):
// the same process, its run id and replication id unchanged.
func TestStatusMasterLossAloneRefusesAReadBeforeIt(t *testing.T) {
	for _, loss := range []string{"Restart", "Flush", "FlushThenResetStat"} {
		t.Run(loss, func(t *testing.T) { statusMasterLossAlone(t, loss) })
	}
}

func statusMasterLossAlone(t *testing.T, loss string) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	s := newStatusStore(cl, rc.Prefix(), time.Hour, 10*time.Second)
	masterOf := func(key string) string {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return m.Options().Addr
	}
	id := ""
	for _, c := range []string{"r-1", "r-2", "r-3", "r-4", "r-5", "r-6", "r-7", "r-8"} {
		if masterOf(s.key(kindRequest, c)) != masterOf(s.epochKey()) {
			id = c
			break
		}
	}
	if id == "" {
		t.Fatal("every candidate status key shares the marker's master")
	}
	key := s.key(kindRequest, id)

	if loss == "FlushThenResetStat" {
		// The master's counters start at zero, as on a master that never
		// served a flush since it started or since its last CONFIG
		// RESETSTAT.
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	since := mustEpoch(t, s) // the poll, before it reads the provider
	approved := transition{kind: kindRequest, id: id, to: string(payout.StatusApproved), ref: "tx-1", final: true, verified: true}
	if out, _, err := s.begin(ctx, approved, "hook"); err != nil || out != outcomeOK {
		t.Fatalf("webhook's APPROVED: %s %v", out, err)
	}
	if err := s.end(ctx, approved, "hook", true); err != nil {
		t.Fatal(err)
	}
	if loss == "Flush" || loss == "FlushThenResetStat" {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if loss == "FlushThenResetStat" {
			// An operator's clean-up: the node emptied and its
			// statistics reset (CONFIG RESETSTAT clears INFO
			// commandstats, the FLUSHALL count with them).
			if err := m.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
	} else if err := rc.RestartMasterOf(ctx, key, nil); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.currentEpoch(ctx); err != nil || cur != marker(since) {
		t.Fatalf("the marker changed (%q, was %q: %v): the restart touched its master", cur, since, err)
	}

	stale := transition{kind: kindRequest, id: id, to: string(payout.StatusPending), ref: "tx-1", verified: true, since: since}
	if out, _, err := s.begin(ctx, stale, "poll"); err != nil || out != outcomeReread {
		t.Fatalf("the poll's PENDING read before its key's master was lost: %s %v, want %s", out, err, outcomeReread)
	}
	// The dispatcher's gate checks its SUBMITTED the same way.
	g := NewGate(cl, rc.Prefix(), time.Minute)
	tk, err := g.Begin(ctx, since, []GateItem{{ID: id, To: string(payout.StatusSubmitted), Ref: "tx-1"}})
	if err != nil || tk.Verdicts[0] != GateSkip {
		t.Fatalf("SUBMITTED observed before the loss: %+v %v, want skipped", tk, err)
	}
	// A status read after the loss (the epoch taken again) is emitted.
	fresh, err := s.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale.since = fresh
	if out, _, err := s.begin(ctx, stale, "poll-2"); err != nil || out != outcomeOK {
		t.Fatalf("PENDING read after the loss: %s %v, want ok", out, err)
	}
}

// The Cluster form of TestDuplicateWebhookAfterALossStillEnrolls: the
// master of the polling schedule restarts empty alone, and the epoch
// marker, on another master, stays. A webhook of a payout this process
// enrolled before, handled after a read of that unchanged marker, found
// its memory still good and did not put the payout back: with its later
// webhooks lost, nothing polled it again.
func TestEnrollMemoryOnAClusterDoesNotOutliveAScheduleMasterLoss(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	masterOf := func(key string) string {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return m.Options().Addr
	}
	prefix := ""
	for i := range 32 { // a prefix whose marker is not on the schedule's master
		p := fmt.Sprintf("%senroll%d:", rc.Prefix(), i)
		if masterOf(p+"track:epoch") != masterOf(p+"{poll}") {
			prefix = p
			break
		}
	}
	if prefix == "" {
		t.Fatal("no prefix puts the marker off the schedule's master")
	}
	f := newFixture(t, fixtureOpts{})
	e, _ := f.engine(func(c *Config) { c.Redis, c.Prefix = cl, prefix })
	sched := submitted.New(cl, prefix, 0)
	marker, err := e.statuses.currentEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.enrollBatch(ctx, "payout-1", e.statuses.epochReads.Load()); err != nil {
		t.Fatal(err)
	}
	if n, err := sched.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled: %d %v", n, err)
	}
	if err := rc.RestartMasterOf(ctx, prefix+"{poll}", nil); err != nil {
		t.Fatal(err)
	}
	// The next webhook: another read of the marker comes between its
	// arrival and its enroll, and finds it unchanged.
	reads := e.statuses.epochReads.Load()
	if cur, err := e.statuses.currentEpoch(ctx); err != nil || cur != marker {
		t.Fatalf("marker %q, was %q (%v): the restart touched its master", cur, marker, err)
	}
	if err := e.enrollBatch(ctx, "payout-1", reads); err != nil {
		t.Fatal(err)
	}
	if n, err := sched.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("scheduled: %d %v after the schedule's master lost it: the memory said it was enrolled", n, err)
	}
}

// The Cluster form of TestGateSubmittedSurvivesAFirstReplicaAttaching: a
// payee waited (DEFERRED, emitted through the gate), and the master of its
// status key gets its first replica (a new replica, or one back after the
// master freed its backlog): Redis gives the master a new replication id,
// every key is kept, and the dispatcher's own check (dispatch's
// sameServer, ratelimit's) takes it for benign. The dispatcher's job for
// the payee took Epoch before the attach, posts, and asks the gate for
// SUBMITTED over DEFERRED: a skip is final, and the SUBMITTED is never
// emitted while nothing was lost.
func TestGateSubmittedSurvivesAClusterMastersFirstReplica(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	g := NewGate(cl, rc.Prefix(), time.Minute)
	emitDeferred(t, g)
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cl.MasterForKey(ctx, g.s.key(kindRequest, "r-1"))
	if err != nil {
		t.Fatal(err)
	}
	replid := func() string {
		t.Helper()
		info, err := m.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, id, _ := strings.Cut(info, "master_replid:")
		id, _, _ = strings.Cut(id, "\r\n")
		return id
	}
	was := replid()
	r := testenv.RedisOwn(t)
	r.ReplicaOfNode(t, m)
	t.Cleanup(func() { r.Promote(t) })
	if replid() == was {
		t.Fatal("the replica's attach kept the master's replication id (a backlog left by an earlier test?): nothing tested")
	}
	if v := gateEmit(t, g, since, string(payout.StatusSubmitted)); v != GateOurs {
		t.Fatalf("SUBMITTED over DEFERRED (nothing lost): verdict %d, want ours: the SUBMITTED is never emitted", v)
	}
}

// Two things together on a Redis Cluster, neither a loss: the master of a
// payee's status key once served a FLUSHALL (before the payee's first
// status: its stamp counts it), and an operator or a monitoring job runs
// CONFIG RESETSTAT on it while a dispatcher job is under way (Epoch taken,
// the POST made). Every key is kept, but the reset clears INFO
// commandstats and with it the master's flush count, so the stamp the job
// took no longer matches: the gate skips the job's SUBMITTED over the
// DEFERRED it emitted, for good, while nothing was lost.
func TestGateSubmittedSurvivesAClusterMastersResetStat(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	g := NewGate(cl, rc.Prefix(), time.Minute)
	m, err := cl.MasterForKey(ctx, g.s.key(kindRequest, "r-1"))
	if err != nil {
		t.Fatal(err)
	}
	// The master served a flush once, long before (a provisioning step).
	if err := m.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	emitDeferred(t, g)
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if v := gateEmit(t, g, since, string(payout.StatusSubmitted)); v != GateOurs {
		t.Fatalf("SUBMITTED over DEFERRED (nothing lost, only statistics reset): verdict %d, want ours: the SUBMITTED is never emitted", v)
	}
}
