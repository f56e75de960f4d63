package submitted

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// caughtUp waits until replica holds key as master has it.
func caughtUp(t *testing.T, master, replica *redis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	want := master.Get(ctx, key).Val()
	deadline := time.Now().Add(10 * time.Second)
	for replica.Get(ctx, key).Val() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the replica does not have %s = %q", key, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A failback to the very process the schedule was marked on: master A is
// cut off from its replica B but takes writes for a moment (a payout put
// on the schedule), while B is promoted without them; the partition heals,
// A syncs from B (the payout is gone) and is made master again. A kept its
// run id, so a marker naming the run id alone still read ready, and the
// payout was never polled. The promotion gave A a new replication id with
// a second one set: the schedule is not ready, and a rebuild begun before
// the failback does not mark it. A first replica attaching to A gave it a
// new replication id too, without a promotion: that one is no loss.
func TestFailbackIsALoss(t *testing.T) {
	asrv, bsrv := testenv.RedisOwn(t), testenv.RedisOwn(t)
	ctx := context.Background()
	a, b := asrv.Client(), bsrv.Client()
	s := New(a, asrv.Prefix(), time.Hour)
	begun, err := s.BeginRebuild(ctx, "r-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReady(ctx); err != nil {
		t.Fatal(err)
	}
	// The first replica: a new replication id, no loss.
	bsrv.ReplicaOf(t, asrv)
	if ok, err := s.Ready(ctx); err != nil || !ok {
		t.Fatalf("ready=%v (%v) once a first replica attached, want ready", ok, err)
	}
	if ok, err := s.MarkReadyAfter(ctx, begun); err != nil || !ok {
		t.Fatalf("a rebuild begun before a first replica attached: marked %v (%v), want marked", ok, err)
	}
	marker := a.Get(ctx, s.readyKey()).Val()
	if strings.Count(marker, ":") != 2 {
		t.Fatalf("marker %q, want <ms>:<replication id>:<run id>", marker)
	}
	gen, err := s.BeginRebuild(ctx, "r-2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	caughtUp(t, a, b, s.rebuildKey())
	// A is cut off: B is promoted, then A takes a payout B never gets.
	bsrv.Promote(t)
	if err := s.Schedule(ctx, "p-cut-off", time.Now()); err != nil {
		t.Fatal(err)
	}
	// The partition heals: A syncs from B, then is made master again.
	asrv.ReplicaOf(t, bsrv)
	asrv.Promote(t)
	if n, _ := s.Scheduled(ctx); n != 0 {
		t.Fatal("the payout scheduled during the partition survived: the test lost its premise")
	}
	if ok, err := s.Ready(ctx); err != nil || ok {
		t.Fatalf("ready=%v (%v) after a failback that lost a payout, want not ready", ok, err)
	}
	if ok, err := s.MarkReadyAfter(ctx, gen); err != nil || ok {
		t.Fatalf("a rebuild begun before the failback marked the schedule: %v %v", ok, err)
	}
	next, err := s.BeginRebuild(ctx, "r-3", time.Minute)
	if err != nil || next == gen {
		t.Fatalf("generation after the failback: %q (before: %q) %v", next, gen, err)
	}
	if ok, err := s.MarkReadyAfter(ctx, next); err != nil || !ok {
		t.Fatalf("the rebuild after the failback did not mark it: %v %v", ok, err)
	}
	if ok, err := s.Ready(ctx); err != nil || !ok {
		t.Fatalf("ready=%v (%v) after the rebuild, want ready", ok, err)
	}
}

// A marker and a rebuild generation as the version before the replication
// id wrote them ("<ms>:<run id>", "<token>:<run id>") still read as this
// process's, and the marker takes the replication id; the marker this
// version writes still ends with ":<run id>", which is what that version
// reads.
func TestStampsOfTheVersionBefore(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	rdb := rs.Client()
	s := New(rdb, rs.Prefix(), time.Hour)
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	run := ""
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			run = v
		}
	}
	if err := rdb.Set(ctx, s.readyKey(), "1700000000000:"+run, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Ready(ctx); err != nil || !ok {
		t.Fatalf("a marker of the version before: ready=%v (%v), want ready", ok, err)
	}
	if v := rdb.Get(ctx, s.readyKey()).Val(); !strings.HasPrefix(v, "1700000000000:") || !strings.HasSuffix(v, ":"+run) || strings.Count(v, ":") != 2 {
		t.Fatalf("marker %q, want it stamped with the replication id", v)
	}
	old := "0123456789abcdef01234567:" + run
	if err := rdb.Set(ctx, s.rebuildKey(), old, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if gen, err := s.BeginRebuild(ctx, "r-1", time.Minute); err != nil || gen != old {
		t.Fatalf("generation %q (%v), want the one under way %q", gen, err, old)
	}
	if ok, err := s.MarkReadyAfter(ctx, old); err != nil || !ok {
		t.Fatalf("a rebuild of the version before did not mark it: %v %v", ok, err)
	}
	if v := rdb.Get(ctx, s.readyKey()).Val(); !strings.HasSuffix(v, ":"+run) {
		t.Fatalf("marker %q does not end with the run id the version before reads", v)
	}
	if n, err := readyBefore.Run(ctx, rdb, []string{s.readyKey()}).Int(); err != nil || n != 1 {
		t.Fatalf("the version before reads this marker as %d (%v), want ready", n, err)
	}
}

// readyBefore is readyScript as the version before the replication id
// wrote it.
var readyBefore = redis.NewScript(`local server = ''
do
  local info = redis.pcall('INFO', 'server')
  if type(info) == 'string' then server = string.match(info, 'run_id:(%x+)') or '' end
end
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local _, _, stamp = string.find(v, ':(%x*)$')
if not stamp then return 0 end
if stamp ~= server then return 0 end
return 1
`)
