package track

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// BenchmarkStatusGate measures the status gate's cost in Redis, the largest
// CPU cost of the load run: each request of a batch goes SUBMITTED (the
// dispatcher) then PENDING (the tracker's first poll), each a begin and an
// end through beginMany and endAll. It reports redis-server's CPU per
// transition (INFO cpu before and after), the figure the load run adds up.
// first=fresh begins the first transition as the dispatcher's gate does
// (transition.fresh: SET NX before any read), first=read as before it.
func BenchmarkStatusGate(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		name := "first=read"
		if fresh {
			name = "first=fresh"
		}
		b.Run(name, func(b *testing.B) { benchmarkStatusGate(b, fresh) })
	}
}

func benchmarkStatusGate(b *testing.B, fresh bool) {
	ctx := context.Background()
	rs := testenv.RedisOwn(b)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	s := newStatusStore(rdb, rs.Prefix(), 24*time.Hour, time.Minute)
	const batch = 2000
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	move := func(ids []string, to payout.Status, fresh bool) {
		trs := make([]transition, len(ids))
		tokens := make([]string, len(ids))
		token := newToken() // one per call, as the engine and the gate give
		for i, id := range ids {
			trs[i] = transition{kind: kindRequest, id: id, to: string(to), ref: "tx-" + id, verified: true, fresh: fresh}
			tokens[i] = token
		}
		epoch, err := s.epoch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for i := range trs {
			trs[i].since = epoch
		}
		outs, _, err := s.beginMany(ctx, trs, tokens)
		if err != nil {
			b.Fatal(err)
		}
		ok := make([]bool, len(ids))
		for i, o := range outs {
			if o != outcomeOK {
				b.Fatalf("%s: %s", ids[i], o)
			}
			ok[i] = true
		}
		if err := s.endAll(ctx, trs, tokens, ok); err != nil {
			b.Fatal(err)
		}
	}
	cpu := testenv.StartCPU(b, rdb)
	for lo := 0; lo < b.N; lo += batch {
		n := min(batch, b.N-lo)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("gate-%s-%d", run, lo+i)
		}
		move(ids, payout.StatusSubmitted, fresh)
		move(ids, payout.StatusPending, false)
	}
	cpu.Report(2*b.N, "transition")
}

// BenchmarkKeepAliveShortAttempt is what holding a lease costs an attempt
// that ends before its first renewal: one timer armed and stopped.
func BenchmarkKeepAliveShortAttempt(b *testing.B) {
	s := &statusStore{lease: time.Minute, chunk: manyChunk}
	trs := []transition{{kind: kindRequest, id: "r-1", to: "SUBMITTED"}}
	tokens := []string{"tok"}
	b.ReportAllocs()
	for b.Loop() {
		s.keepAlive(trs, tokens, []string{""}, true, nil).stop()
	}
}

// BenchmarkDispatcherGate measures the status gate as the Wompi dispatcher
// uses it after a batch's POST and listing: one Begin of a batch's
// requests, each a new key going to PENDING via SUBMITTED under one token,
// then one End confirming them all. It reports redis-server's CPU per
// request, the largest part of Redis's cost per request in the load run.
func BenchmarkDispatcherGate(b *testing.B) {
	ctx := context.Background()
	rs := testenv.RedisOwn(b)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	g := NewGate(rdb, rs.Prefix(), time.Minute)
	const batch = 2000
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	cpu := testenv.StartCPU(b, rdb)
	for lo := 0; lo < b.N; lo += batch {
		n := min(batch, b.N-lo)
		items := make([]GateItem, n)
		for i := range items {
			id := fmt.Sprintf("r-%s-%d", run, lo+i)
			items[i] = GateItem{ID: id, To: string(payout.StatusPending), Via: string(payout.StatusSubmitted),
				Ref: "tx-" + id}
		}
		since, err := g.Epoch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		t, err := g.Begin(ctx, since, items)
		if err != nil {
			b.Fatal(err)
		}
		for i, v := range t.Verdicts {
			if v != GateOurs {
				b.Fatalf("%s: verdict %v", items[i].ID, v)
			}
		}
		if err := g.End(ctx, t, true); err != nil {
			b.Fatal(err)
		}
	}
	cpu.Report(b.N, "request")
}
