package submitted

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// pipelineCounter counts the commands of every pipeline a client sends,
// by name.
type pipelineCounter struct {
	pipelines int
	commands  map[string]int
}

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines++
		for _, cmd := range cmds {
			c.commands[cmd.Name()]++
		}
		return next(ctx, cmds)
	}
}

// TestRecordManySchedulesEveryPayoutOnce: a single-payout batch's hand-off
// writes each payout's hash with its TTL and schedules every payout at
// firstPoll with one ZADD NX in the same round trip; a payout already on
// the schedule keeps its time, and every transaction maps back to its
// request. On a Redis Cluster too, where the payouts' hashes spread over
// every slot and the schedule is one key.
func TestRecordManySchedulesEveryPayoutOnce(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		rs := testenv.Redis(t)
		cl := rs.NewClient(t)
		testRecordMany(t, cl, cl.AddHook, rs.Prefix())
	})
	t.Run("cluster", func(t *testing.T) {
		rc := testenv.RedisCluster(t)
		cl := rc.NewClient(t)
		testRecordMany(t, cl, cl.AddHook, rc.Prefix())
	})
}

func testRecordMany(t *testing.T, cl redis.UniversalClient, addHook func(redis.Hook), prefix string) {
	ctx := context.Background()
	count := &pipelineCounter{commands: map[string]int{}}
	addHook(count)
	s := New(cl, prefix, time.Hour)
	now := time.UnixMilli(1_800_000_000_000)
	later := now.Add(time.Hour)

	// A payout recorded by an earlier attempt, due later: NX keeps it.
	if err := s.Record(ctx, Payout{PayoutID: "sfp:kept", BatchID: "b-0"}, []Transaction{{TransactionID: "kept", RequestID: "req-kept", AmountInCents: 5}}, later); err != nil {
		t.Fatal(err)
	}
	count.pipelines, count.commands = 0, map[string]int{}

	const n = 300
	ps := make([]Payout, 0, n+1)
	txs := make([][]Transaction, 0, n+1)
	for i := range n {
		id := fmt.Sprintf("sfp:%04d", i)
		ps = append(ps, Payout{PayoutID: id, BatchID: "b-1", OriginAccountID: "acc", PaymentType: "PAYROLL",
			TotalAmountInCents: int64(100 + i), TransactionCount: 1, SubmittedAt: now})
		txs = append(txs, []Transaction{{TransactionID: fmt.Sprintf("%04d", i), RequestID: fmt.Sprintf("req-%04d", i),
			BatchID: "b-1", PayoutID: id, AmountInCents: int64(100 + i), OriginAccountID: "acc"}})
	}
	ps = append(ps, Payout{PayoutID: "sfp:kept", BatchID: "b-0"})
	txs = append(txs, []Transaction{{TransactionID: "kept", RequestID: "req-kept", AmountInCents: 5}})
	if err := s.RecordMany(ctx, ps, txs, now); err != nil {
		t.Fatal(err)
	}
	if count.pipelines != 1 || count.commands["zadd"] != 1 || count.commands["hset"] != n+1 || count.commands["expire"] != n+1 {
		t.Fatalf("RecordMany of %d payouts sent %d pipelines with %v; want 1 with one zadd, %d hset and %d expire",
			n+1, count.pipelines, count.commands, n+1, n+1)
	}
	if got, _ := s.Scheduled(ctx); got != n+1 {
		t.Fatalf("%d payouts scheduled, want %d", got, n+1)
	}
	for i, p := range ps[:n] {
		score, err := cl.ZScore(ctx, s.pollKey(), p.PayoutID).Result()
		if err != nil || int64(score) != now.UnixMilli() {
			t.Fatalf("%s scheduled at %v (%v), want %d", p.PayoutID, score, err, now.UnixMilli())
		}
		got, ok, err := s.Lookup(ctx, p.PayoutID, txs[i][0].TransactionID)
		if err != nil || !ok || got != txs[i][0] {
			t.Fatalf("Lookup(%s) = %+v %v %v", p.PayoutID, got, ok, err)
		}
		if ttl := cl.TTL(ctx, s.payoutKey(p.PayoutID)).Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("%s: hash TTL %v", p.PayoutID, ttl)
		}
	}
	if score := cl.ZScore(ctx, s.pollKey(), "sfp:kept").Val(); int64(score) != later.UnixMilli() {
		t.Fatalf("a payout already scheduled moved to %v, want %d", score, later.UnixMilli())
	}
	// Only the first n are due now.
	due, err := s.ClaimDue(ctx, now, time.Minute, 2*n)
	if err != nil || len(due) != n {
		t.Fatalf("ClaimDue at firstPoll = %d payouts (%v), want %d", len(due), err, n)
	}
}
