package track

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two things together on a Redis Cluster, neither a loss: a dispatcher job
// for a payee that waited (DEFERRED) takes Epoch and posts, and meanwhile
// an operator reshards (redis-cli --cluster reshard or rebalance, which
// takes a source's lowest slots first): the first slot of the master of
// the payee's status key moves, with its keys, to another master. Every
// key is kept. The master's canary key (in that first slot) moved with it,
// so the stamp of the status key's master no longer names the canary the
// job's since knew, and the gate skips the SUBMITTED for good while
// nothing was lost.
func TestGateSubmittedSurvivesAClusterReshardOfAMastersFirstSlot(t *testing.T) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	g := NewGate(cl, rc.Prefix(), time.Minute)
	key := g.s.key(kindRequest, "r-1")
	m, err := cl.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	from := m.Options().Addr
	first, err := rc.FirstSlotOf(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	if slot, err := cl.ClusterKeySlot(ctx, key).Result(); err != nil || int(slot) == first {
		t.Fatalf("the status key's slot %d (%v) is its master's first: pick another id", slot, err)
	}
	to := ""
	for _, a := range rc.Addrs() {
		if a != from {
			to = a
			break
		}
	}
	emitDeferred(t, g)
	since, err := g.Epoch(ctx) // the job, before its POST
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.MoveSlot(ctx, first, to); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rc.MoveSlot(context.Background(), first, from); err != nil {
			t.Errorf("moving slot %d back: %v", first, err)
		}
	})
	if v := gateEmit(t, g, since, string(payout.StatusSubmitted)); v != GateOurs {
		t.Fatalf("SUBMITTED over DEFERRED (a slot moved, nothing lost): verdict %d, want ours: the SUBMITTED is never emitted", v)
	}
}

// The loss of TestStatusMasterLossAloneRefusesAReadBeforeIt's "Flush"
// (a FLUSHALL sent to the status key's master alone) with a cluster client
// that names the nodes otherwise than CLUSTER SLOTS does: seeded with a
// host name, while the nodes announce a loopback address (one host running
// the nodes, reached by its name: go-redis puts the seed's host in place of
// the loopback one; a TLS-only cluster's port 0 is replaced with the
// seed's port the same way). The masters' canary keys were matched to the
// client's masters by the addresses CLUSTER SLOTS answers, so no master
// had one: the stamp named none, the flush went unseen, and the poll's
// PENDING read before it was emitted after the APPROVED the flush took.
func TestStatusMasterFlushAloneSeenWhateverTheClientCallsTheNodes(t *testing.T) {
	rc := testenv.RedisCluster(t)
	var seeds []string
	for _, a := range rc.Addrs() {
		_, port, _ := net.SplitHostPort(a)
		seeds = append(seeds, net.JoinHostPort("redis-cluster.test", port))
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		}})
	t.Cleanup(func() { _ = cl.Close() })
	ctx := context.Background()
	s := newStatusStore(cl, rc.Prefix(), time.Hour, 10*time.Second)
	masterOf := func(key string) *redis.Client {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if a := masterOf(s.epochKey()).Options().Addr; !strings.HasPrefix(a, "redis-cluster.test:") {
		t.Fatalf("the client names a master %s: nothing tested", a)
	}
	id := ""
	for _, c := range []string{"r-1", "r-2", "r-3", "r-4", "r-5", "r-6", "r-7", "r-8"} {
		if masterOf(s.key(kindRequest, c)).Options().Addr != masterOf(s.epochKey()).Options().Addr {
			id = c
			break
		}
	}
	if id == "" {
		t.Fatal("every candidate status key shares the marker's master")
	}
	key := s.key(kindRequest, id)
	since := mustEpoch(t, s) // the poll, before it reads the provider
	approved := transition{kind: kindRequest, id: id, to: string(payout.StatusApproved), ref: "tx-1", final: true, verified: true}
	if out, _, err := s.begin(ctx, approved, "hook"); err != nil || out != outcomeOK {
		t.Fatalf("webhook's APPROVED: %s %v", out, err)
	}
	if err := s.end(ctx, approved, "hook", true); err != nil {
		t.Fatal(err)
	}
	if err := masterOf(key).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	stale := transition{kind: kindRequest, id: id, to: string(payout.StatusPending), ref: "tx-1", verified: true, since: since}
	if out, _, err := s.begin(ctx, stale, "poll"); err != nil || out != outcomeReread {
		t.Fatalf("the poll's PENDING read before its key's master was flushed: %s %v, want %s: PENDING follows APPROVED", out, err, outcomeReread)
	}
}

// Two things together on a Redis Cluster: a reshard moves the first slot
// of the master of a request's status key (and with it one of the master's
// canaries) to another master, then that master alone is flushed (a
// FLUSHALL sent to it, as redis-cli -c does). A poll read PENDING before
// both, a webhook's APPROVED was emitted in between. The canary that moved
// still holds its token, on the other master: were it counted, the flush
// would go unseen and PENDING would follow APPROVED. The master's own
// canaries, which the flush took, tell the loss.
func TestStatusMasterFlushAfterAReshardOfItsFirstSlotRefusesAReadBeforeIt(t *testing.T) {
	flushAfterAReshardOfItsFirstSlot(t, false)
}

// TestStatusMasterFlushAfterAReshardOfItsFirstSlotRefusesAReadBeforeIt with
// the slot moved back after the flush (review rv-whole41): a reshard moves
// the master's first slot (and its canary, with its token) away, the master
// alone is flushed, and the slot comes back (a rebalance undone, a node
// added then removed): the canary returns to the master with the token the
// since names, and the master's stamp shares it with the since's. The
// flush goes unseen and PENDING follows APPROVED.
func TestStatusMasterFlushSeenWhenItsMovedCanaryComesBack(t *testing.T) {
	flushAfterAReshardOfItsFirstSlot(t, true)
}

// flushAfterAReshardOfItsFirstSlot is both tests above: back moves the
// slot back to its master after the flush.
func flushAfterAReshardOfItsFirstSlot(t *testing.T, back bool) {
	rc := testenv.RedisCluster(t)
	cl := rc.NewClient(t)
	ctx := context.Background()
	s := newStatusStore(cl, rc.Prefix(), time.Hour, 10*time.Second)
	masterOf := func(key string) *redis.Client {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	id, from, first := "", "", 0
	for _, c := range []string{"r-1", "r-2", "r-3", "r-4", "r-5", "r-6", "r-7", "r-8"} {
		key := s.key(kindRequest, c)
		addr := masterOf(key).Options().Addr
		if addr == masterOf(s.epochKey()).Options().Addr {
			continue
		}
		f, err := rc.FirstSlotOf(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		if slot, err := cl.ClusterKeySlot(ctx, key).Result(); err != nil || int(slot) == f {
			continue
		}
		id, from, first = c, addr, f
		break
	}
	if id == "" {
		t.Fatal("no candidate status key off the marker's master and its master's first slot")
	}
	key := s.key(kindRequest, id)
	to := ""
	for _, a := range rc.Addrs() {
		if a != from {
			to = a
			break
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
	if err := rc.MoveSlot(ctx, first, to); err != nil {
		t.Fatal(err)
	}
	if !back {
		t.Cleanup(func() {
			if err := rc.MoveSlot(context.Background(), first, from); err != nil {
				t.Errorf("moving slot %d back: %v", first, err)
			}
		})
	}
	if err := masterOf(key).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if back {
		if err := rc.MoveSlot(ctx, first, from); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			cl.ReloadState(ctx)
			if masterOf(s.canaryKey(first)).Options().Addr == from {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the client does not see the slot back on its master")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if cur, err := s.currentEpoch(ctx); err != nil || cur != marker(since) {
		t.Fatalf("the marker changed (%q, was %q: %v): the flush touched its master", cur, since, err)
	}
	stale := transition{kind: kindRequest, id: id, to: string(payout.StatusPending), ref: "tx-1", verified: true, since: since}
	if out, _, err := s.begin(ctx, stale, "poll"); err != nil || out != outcomeReread {
		t.Fatalf("the poll's PENDING read before its key's master lost a slot then was flushed (the slot back after: %v): %s %v, want %s: PENDING follows APPROVED", back, out, err, outcomeReread)
	}
	// The dispatcher's gate checks its SUBMITTED the same way.
	g := NewGate(cl, rc.Prefix(), time.Minute)
	tk, err := g.Begin(ctx, since, []GateItem{{ID: id, To: string(payout.StatusSubmitted), Ref: "tx-1"}})
	if err != nil || tk.Verdicts[0] != GateSkip {
		t.Fatalf("SUBMITTED observed before the flush: %+v %v, want skipped", tk, err)
	}
}
