package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

const (
	day   = "2026-11-21"
	acctA = "5f1d2c3b-aaaa-4e5f-8a9b-000000000001"
	acctB = "5f1d2c3b-bbbb-4e5f-8a9b-000000000002"
)

func newBudget(t testing.TB, rdb redis.UniversalClient, prefix string, cap int, limit int64) *ratelimit.Budget {
	t.Helper()
	b, err := ratelimit.NewBudget(rdb, ratelimit.BudgetConfig{
		Prefix:            prefix,
		DailyBatchCap:     cap,
		AccountDailyLimit: func(string) int64 { return limit },
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// step is one call in a scenario. Exactly one of reserve, release, seed is
// set.
type step struct {
	reserve *ratelimit.Reservation
	release *ratelimit.Reservation
	seed    *seedArgs

	wantGrant    ratelimit.Grant // for reserve, compared without the limits
	wantErr      error           // errors.Is match
	wantReleased bool
}

type seedArgs struct {
	day, account string
	amount       int64
	batches      int
}

func res(batch, acct, d string, amount int64) *ratelimit.Reservation {
	return &ratelimit.Reservation{BatchID: batch, AccountID: acct, Day: d, SlotDay: d, AmountInCents: amount}
}

// sched is a scheduled batch: posted on slot, its amount counts on d.
func sched(batch, acct, d, slot string, amount int64) *ratelimit.Reservation {
	return &ratelimit.Reservation{BatchID: batch, AccountID: acct, Day: d, SlotDay: slot, AmountInCents: amount}
}

func granted(used int64, batches int) ratelimit.Grant {
	return ratelimit.Grant{Granted: true, UsedAmountInCents: used, UsedBatches: batches}
}

func held(used int64, batches int) ratelimit.Grant {
	g := granted(used, batches)
	g.AlreadyHeld = true
	return g
}

func denied(why ratelimit.Denial, used int64, batches int) ratelimit.Grant {
	return ratelimit.Grant{Denied: why, UsedAmountInCents: used, UsedBatches: batches}
}

func seedStep(d, acct string, amount int64, batches int) step {
	return step{seed: &seedArgs{d, acct, amount, batches}}
}

// Scenarios run with a batch cap of 3 and an account limit of 1000 cents.
func TestBudgetScenarios(t *testing.T) {
	const other = "2026-11-22"
	seedA := seedStep(day, acctA, 0, 0)
	seedB := seedStep(day, acctB, 0, 0)
	tests := []struct {
		name  string
		steps []step
		want  map[string]ratelimit.Usage // account -> usage on day after the steps
	}{
		{name: "grant within limit", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 400), wantGrant: granted(400, 1)},
			{reserve: res("b2", acctA, day, 600), wantGrant: granted(1000, 2)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 1000, Batches: 2}}},
		{name: "deny amount over limit", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 700), wantGrant: granted(700, 1)},
			{reserve: res("b2", acctA, day, 301), wantGrant: denied(ratelimit.DeniedAmount, 700, 1)},
			{reserve: res("b3", acctA, day, 300), wantGrant: granted(1000, 2)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 1000, Batches: 2}}},
		{name: "deny amount larger than the limit itself", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 1001), wantGrant: denied(ratelimit.DeniedAmount, 0, 0)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true}}},
		{name: "deny when batch slots used, across accounts", steps: []step{
			seedA, seedB,
			{reserve: res("b1", acctA, day, 1), wantGrant: granted(1, 1)},
			{reserve: res("b2", acctB, day, 1), wantGrant: granted(1, 2)},
			{reserve: res("b3", acctA, day, 1), wantGrant: granted(2, 3)},
			{reserve: res("b4", acctB, day, 1), wantGrant: denied(ratelimit.DeniedBatchCount, 1, 3)},
		}, want: map[string]ratelimit.Usage{
			acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 2, Batches: 3},
			acctB: {Seeded: true, BatchesSeeded: true, AmountInCents: 1, Batches: 3},
		}},
		{name: "batch count is checked before amount", steps: []step{
			seedStep(day, acctA, 0, 3),
			{reserve: res("b1", acctA, day, 5000), wantGrant: denied(ratelimit.DeniedBatchCount, 0, 3)},
		}},
		{name: "limits are per account", steps: []step{
			seedA, seedB,
			{reserve: res("b1", acctA, day, 1000), wantGrant: granted(1000, 1)},
			{reserve: res("b2", acctB, day, 1000), wantGrant: granted(1000, 2)},
		}},
		{name: "re-reserve is idempotent", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 600), wantGrant: granted(600, 1)},
			{reserve: res("b1", acctA, day, 600), wantGrant: held(600, 1)},
			{reserve: res("b1", acctA, day, 600), wantGrant: held(600, 1)},
			// Held even though a fresh reservation would now be denied.
			{reserve: res("b2", acctA, day, 400), wantGrant: granted(1000, 2)},
			{reserve: res("b1", acctA, day, 600), wantGrant: held(1000, 2)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 1000, Batches: 2}}},
		{name: "re-reserve with another amount or account conflicts", steps: []step{
			seedA, seedB,
			{reserve: res("b1", acctA, day, 600), wantGrant: granted(600, 1)},
			{reserve: res("b1", acctA, day, 601), wantErr: ratelimit.ErrReservationConflict},
			{reserve: res("b1", acctB, day, 600), wantErr: ratelimit.ErrReservationConflict},
		}, want: map[string]ratelimit.Usage{
			acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 600, Batches: 1},
			acctB: {Seeded: true, BatchesSeeded: true, AmountInCents: 0, Batches: 1},
		}},
		{name: "release returns amount and slot", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 600), wantGrant: granted(600, 1)},
			{reserve: res("b2", acctA, day, 500), wantGrant: denied(ratelimit.DeniedAmount, 600, 1)},
			{release: res("b1", acctA, day, 600), wantReleased: true},
			{reserve: res("b2", acctA, day, 500), wantGrant: granted(500, 1)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 500, Batches: 1}}},
		{name: "release is idempotent and uses the recorded reservation", steps: []step{
			seedA, seedB,
			{reserve: res("b1", acctA, day, 600), wantGrant: granted(600, 1)},
			{reserve: res("b2", acctB, day, 100), wantGrant: granted(100, 2)},
			// Wrong account and amount in the request: the record wins.
			{release: res("b1", acctB, day, 1), wantReleased: true},
			{release: res("b1", acctA, day, 600), wantReleased: false},
			{release: res("never", acctA, day, 600), wantReleased: false},
		}, want: map[string]ratelimit.Usage{
			acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 0, Batches: 1},
			acctB: {Seeded: true, BatchesSeeded: true, AmountInCents: 100, Batches: 1},
		}},
		{name: "released batch can be reserved again", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 600), wantGrant: granted(600, 1)},
			{release: res("b1", acctA, day, 600), wantReleased: true},
			{reserve: res("b1", acctA, day, 600), wantGrant: granted(600, 1)},
		}},
		{name: "days are independent", steps: []step{
			seedA, seedStep(other, acctA, 0, 0),
			{reserve: res("b1", acctA, day, 1000), wantGrant: granted(1000, 1)},
			{reserve: res("b1", acctA, other, 1000), wantGrant: granted(1000, 1)},
			{release: res("b1", acctA, other, 1000), wantReleased: true},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 1000, Batches: 1}}},
		{name: "not seeded", steps: []step{
			{reserve: res("b1", acctA, day, 1), wantErr: ratelimit.ErrNotSeeded},
			{release: res("b1", acctA, day, 1), wantReleased: false},
		}, want: map[string]ratelimit.Usage{acctA: {}}},
		{name: "seeding one account does not seed another", steps: []step{
			seedA,
			{reserve: res("b1", acctB, day, 1), wantErr: ratelimit.ErrNotSeeded},
		}, want: map[string]ratelimit.Usage{acctB: {BatchesSeeded: true}}},
		{name: "seed counts what Wompi consumed", steps: []step{
			seedStep(day, acctA, 900, 2),
			{reserve: res("b1", acctA, day, 101), wantGrant: denied(ratelimit.DeniedAmount, 900, 2)},
			{reserve: res("b2", acctA, day, 100), wantGrant: granted(1000, 3)},
			{reserve: res("b3", acctA, day, 0+1), wantGrant: denied(ratelimit.DeniedBatchCount, 1000, 3)},
		}},
		{name: "seed takes the max and never lowers", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 500), wantGrant: granted(500, 1)},
			seedStep(day, acctA, 200, 0), // older Wompi figure: keep ours
			{reserve: res("b2", acctA, day, 500), wantGrant: granted(1000, 2)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 1000, Batches: 2}}},
		{name: "seed raises to Wompi's figure", steps: []step{
			seedA,
			{reserve: res("b1", acctA, day, 100), wantGrant: granted(100, 1)},
			seedStep(day, acctA, 800, 2),
			{reserve: res("b2", acctA, day, 201), wantGrant: denied(ratelimit.DeniedAmount, 800, 2)},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true, AmountInCents: 800, Batches: 2}}},
		{name: "invalid reservations", steps: []step{
			seedA,
			{reserve: res("", acctA, day, 1), wantErr: ratelimit.ErrInvalid},
			{reserve: res("b1", "", day, 1), wantErr: ratelimit.ErrInvalid},
			{reserve: res("b1", acctA, "2026-11-31", 1), wantErr: ratelimit.ErrInvalid},
			{reserve: res("b1", acctA, "21/11/2026", 1), wantErr: ratelimit.ErrInvalid},
			{reserve: res("b1", acctA, day, 0), wantErr: ratelimit.ErrInvalid},
			{reserve: res("b1", acctA, day, -5), wantErr: ratelimit.ErrInvalid},
			{reserve: res("b 1", acctA, day, 1), wantErr: ratelimit.ErrInvalid},
		}, want: map[string]ratelimit.Usage{acctA: {Seeded: true, BatchesSeeded: true}}},
	}
	rs := testenv.Redis(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := newBudget(t, rs.Client(), rs.Prefix()+t.Name()+":", 3, 1000)
			for i, s := range tc.steps {
				switch {
				case s.seed != nil:
					if _, err := b.Seed(ctx, rail.Wompi, s.seed.day, s.seed.account, s.seed.amount, s.seed.batches); err != nil {
						t.Fatalf("step %d seed: %v", i, err)
					}
				case s.reserve != nil:
					g, err := b.Reserve(ctx, *s.reserve)
					if s.wantErr != nil {
						if !errors.Is(err, s.wantErr) {
							t.Fatalf("step %d reserve %+v: err %v, want %v", i, *s.reserve, err, s.wantErr)
						}
						continue
					}
					if err != nil {
						t.Fatalf("step %d reserve %+v: %v", i, *s.reserve, err)
					}
					if g.AccountLimitInCents != 1000 || g.BatchCap != 3 {
						t.Errorf("step %d: limits in grant %d/%d", i, g.AccountLimitInCents, g.BatchCap)
					}
					g.AccountLimitInCents, g.BatchCap = 0, 0
					if g != s.wantGrant {
						t.Fatalf("step %d reserve %s %d: got %+v, want %+v", i, s.reserve.BatchID, s.reserve.AmountInCents, g, s.wantGrant)
					}
				case s.release != nil:
					ok, err := b.Release(ctx, *s.release)
					if err != nil {
						t.Fatalf("step %d release: %v", i, err)
					}
					if ok != s.wantReleased {
						t.Fatalf("step %d release %s: released=%v, want %v", i, s.release.BatchID, ok, s.wantReleased)
					}
				}
			}
			for acct, want := range tc.want {
				got, err := b.Usage(ctx, rail.Wompi, day, acct)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("usage of %s: %+v, want %+v", acct, got, want)
				}
			}
		})
	}
}

// Many goroutines on several clients (replicas) race for one account's limit
// and the batch cap: the sum granted never exceeds either, and equals what
// Redis counted (no lost or double update).
func TestBudgetConcurrentReservationsNeverOverspend(t *testing.T) {
	tests := []struct {
		name  string
		cap   int
		limit int64
	}{
		{name: "amount binds", cap: 10_000, limit: 250_000},
		{name: "batch cap binds", cap: 37, limit: 1 << 50},
	}
	rs := testenv.Redis(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := rs.Prefix() + t.Name() + ":"
			var budgets []*ratelimit.Budget
			for range 4 {
				budgets = append(budgets, newBudget(t, rs.NewClient(t), prefix, tc.cap, tc.limit))
			}
			if _, err := budgets[0].Seed(ctx, rail.Wompi, day, acctA, 0, 0); err != nil {
				t.Fatal(err)
			}
			var grantedSum, grants, denials atomic.Int64
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					b := budgets[g%len(budgets)]
					rng := rand.New(rand.NewPCG(uint64(g), 7))
					for i := range 25 {
						amt := 1 + rng.Int64N(2000)
						r := ratelimit.Reservation{BatchID: fmt.Sprintf("g%d-%d", g, i), AccountID: acctA, Day: day, SlotDay: day, AmountInCents: amt}
						gr, err := b.Reserve(ctx, r)
						if err != nil {
							t.Error(err)
							return
						}
						// A redelivery of the same batch never counts twice.
						again, err := b.Reserve(ctx, r)
						if err != nil || again.Granted != gr.Granted || (gr.Granted && !again.AlreadyHeld) {
							t.Errorf("re-reserve of %s: %+v, %v after %+v", r.BatchID, again, err, gr)
						}
						if gr.Granted {
							grantedSum.Add(amt)
							grants.Add(1)
						} else {
							denials.Add(1)
						}
					}
				})
			}
			wg.Wait()
			u, err := budgets[0].Usage(ctx, rail.Wompi, day, acctA)
			if err != nil {
				t.Fatal(err)
			}
			if grantedSum.Load() > tc.limit {
				t.Errorf("granted %d cents over the limit %d", grantedSum.Load(), tc.limit)
			}
			if grants.Load() > int64(tc.cap) {
				t.Errorf("granted %d batches over the cap %d", grants.Load(), tc.cap)
			}
			if u.AmountInCents != grantedSum.Load() || int64(u.Batches) != grants.Load() {
				t.Errorf("Redis counts %+v, callers were granted %d cents in %d batches", u, grantedSum.Load(), grants.Load())
			}
			if denials.Load() == 0 {
				t.Errorf("no reservation was denied: the limit was never contended, so the test proves nothing")
			}
			t.Logf("granted %d batches / %d cents, denied %d", grants.Load(), grantedSum.Load(), denials.Load())
		})
	}
}

// After Redis loses everything the budget is unknown until seeded; a batch
// reserved before the loss is counted again and its stale Release is a
// no-op, so the counters never go below Wompi's figure.
func TestBudgetAfterRedisLoss(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), "payouts:", 10, 1000)
	if _, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0); err != nil {
		t.Fatal(err)
	}
	if g, err := b.Reserve(ctx, *res("b1", acctA, day, 300)); err != nil || !g.Granted {
		t.Fatalf("reserve: %+v %v", g, err)
	}
	if err := rs.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := b.Usage(ctx, rail.Wompi, day, acctA)
	if err != nil || u.Seeded {
		t.Fatalf("after loss Usage = %+v, %v; want not seeded", u, err)
	}
	if _, err := b.Reserve(ctx, *res("b2", acctA, day, 1)); !errors.Is(err, ratelimit.ErrNotSeeded) {
		t.Fatalf("reserve after loss: %v, want ErrNotSeeded", err)
	}
	// Wompi says b1 was posted: 300 cents, 1 batch.
	if u, err := b.Seed(ctx, rail.Wompi, day, acctA, 300, 1); err != nil || u != (ratelimit.Usage{Seeded: true, BatchesSeeded: true, AmountInCents: 300, Batches: 1}) {
		t.Fatalf("seed: %+v %v", u, err)
	}
	if ok, err := b.Release(ctx, *res("b1", acctA, day, 300)); err != nil || ok {
		t.Fatalf("release of a reservation lost with Redis: %v %v, want no-op", ok, err)
	}
	if g, err := b.Reserve(ctx, *res("b2", acctA, day, 700)); err != nil || g != (ratelimit.Grant{Granted: true, UsedAmountInCents: 1000, UsedBatches: 2, AccountLimitInCents: 1000, BatchCap: 10}) {
		t.Fatalf("reserve after seed: %+v %v", g, err)
	}

	if rs.Kind() != testenv.RedisProcess {
		return
	}
	// A restart without persistence is the same loss.
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, *res("b3", acctA, day, 1)); !errors.Is(err, ratelimit.ErrNotSeeded) {
		t.Fatalf("reserve after restart: %v, want ErrNotSeeded", err)
	}
}

// One day's budget is one key; every day shares the hash tag {budget}, so a
// reservation over two days stays in one Cluster slot. Keys have a TTL;
// each call is one round trip.
func TestBudgetKeyLayoutAndRoundTrips(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	var cmds atomic.Int64
	c := rs.NewClient(t)
	c.AddHook(countHook{&cmds})
	prefix := rs.Prefix()
	b := newBudget(t, c, prefix, 10, 1000)
	if got, want := b.Key(day), prefix+"{budget}:2026-11-21"; got != want {
		t.Fatalf("Key = %q, want %q", got, want)
	}
	if _, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, *res("warm", acctA, day, 1)); err != nil { // loads the script
		t.Fatal(err)
	}
	if _, err := b.Release(ctx, *res("warm", acctA, day, 1)); err != nil { // and the release's
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		fn   func() error
	}{
		{"reserve", func() error { _, err := b.Reserve(ctx, *res("b1", acctA, day, 5)); return err }},
		{"re-reserve", func() error { _, err := b.Reserve(ctx, *res("b1", acctA, day, 5)); return err }},
		{"release", func() error { _, err := b.Release(ctx, *res("b1", acctA, day, 5)); return err }},
		{"usage", func() error { _, err := b.Usage(ctx, rail.Wompi, day, acctA); return err }},
	} {
		cmds.Store(0)
		if err := op.fn(); err != nil {
			t.Fatal(err)
		}
		if n := cmds.Load(); n != 1 {
			t.Errorf("%s took %d round trips, want 1", op.name, n)
		}
	}
	keys, err := rs.Client().Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The day's hash, and the stamp naming the Redis process that holds
	// the budgets and its replication id (ErrServerChanged).
	slices.Sort(keys)
	if want := []string{b.Key(day), prefix + "{budget}:repl", prefix + "{budget}:server"}; !slices.Equal(keys, want) {
		t.Fatalf("keys = %v, want only %v", keys, want)
	}
	ttl, err := rs.Client().TTL(ctx, b.Key(day)).Result()
	if err != nil || ttl <= 0 || ttl > ratelimit.DefaultBudgetTTL {
		t.Fatalf("TTL = %v, %v", ttl, err)
	}
}

type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestNewBudgetConfig(t *testing.T) {
	rs := testenv.Redis(t)
	tests := []struct {
		name string
		cfg  ratelimit.BudgetConfig
		ok   bool
	}{
		{"zero value", ratelimit.BudgetConfig{}, true},
		{"braces in prefix", ratelimit.BudgetConfig{Prefix: "x{y}:"}, false},
		{"negative cap", ratelimit.BudgetConfig{DailyBatchCap: -1}, false},
		{"tiny ttl", ratelimit.BudgetConfig{TTL: time.Microsecond}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ratelimit.NewBudget(rs.Client(), tc.cfg)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ratelimit.ErrInvalid)) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := ratelimit.NewBudget(nil, ratelimit.BudgetConfig{}); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("nil client: %v", err)
	}
}

// The default configuration applies Wompi's figures.
func TestBudgetDefaults(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b, err := ratelimit.NewBudget(rs.Client(), ratelimit.BudgetConfig{Prefix: rs.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 3799); err != nil {
		t.Fatal(err)
	}
	g, err := b.Reserve(ctx, *res("b1", acctA, day, ratelimit.DefaultAccountDailyLimit))
	if err != nil || !g.Granted || g.BatchCap != 3800 || g.AccountLimitInCents != 150_000_000_000 || g.UsedBatches != 3800 {
		t.Fatalf("grant %+v, %v", g, err)
	}
	g, err = b.Reserve(ctx, *res("b2", acctB, day, 1))
	if !errors.Is(err, ratelimit.ErrNotSeeded) {
		t.Fatalf("unseeded account B: %+v %v", g, err)
	}
	if _, err := b.Seed(ctx, rail.Wompi, day, acctB, 0, 0); err != nil {
		t.Fatal(err)
	}
	if g, err = b.Reserve(ctx, *res("b2", acctB, day, 1)); err != nil || g.Denied != ratelimit.DeniedBatchCount {
		t.Fatalf("3801st batch: %+v %v", g, err)
	}
}

// Days of the scheduling tests: a batch is sent on day and scheduled for
// later; tomorrow is the day after day.
const (
	tomorrow = "2026-11-22"
	later    = "2026-11-24"
)

func usage(t *testing.T, b *ratelimit.Budget, d, acct string) ratelimit.Usage {
	t.Helper()
	u, err := b.Usage(context.Background(), rail.Wompi, d, acct)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustSeed(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A scheduled batch takes a batch slot on the day it is sent and its amount
// on its dispersion day, and each day must be seeded for its own part.
func TestScheduledBatchTakesTheSendDaysSlotAndTheLaterDaysAmount(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	r := *sched("s1", acctA, later, day, 400)

	_, err := b.Reserve(ctx, r)
	var ns *ratelimit.NotSeededError
	if !errors.As(err, &ns) || !errors.Is(err, ratelimit.ErrNotSeeded) || *ns != (ratelimit.NotSeededError{Rail: rail.Wompi, AccountID: acctA, AmountDay: later, SlotDay: day}) {
		t.Fatalf("reserve on an empty Redis: %v, want both days not seeded", err)
	}
	_, err = b.SeedBatches(ctx, rail.Wompi, day, 0)
	mustSeed(t, err)
	_, err = b.Reserve(ctx, r)
	if !errors.As(err, &ns) || *ns != (ratelimit.NotSeededError{Rail: rail.Wompi, AccountID: acctA, AmountDay: later}) {
		t.Fatalf("reserve with the send day seeded: %v, want the amount day not seeded", err)
	}
	_, err = b.SeedAmount(ctx, rail.Wompi, later, acctA, 0)
	mustSeed(t, err)
	g, err := b.Reserve(ctx, r)
	if err != nil || g != (ratelimit.Grant{Granted: true, UsedAmountInCents: 400, UsedBatches: 1, AccountLimitInCents: 1000, BatchCap: 3}) {
		t.Fatalf("reserve: %+v %v", g, err)
	}
	if u := usage(t, b, day, acctA); u != (ratelimit.Usage{BatchesSeeded: true, Batches: 1}) {
		t.Errorf("send day: %+v, want its one batch slot and no amount", u)
	}
	if u := usage(t, b, later, acctA); u != (ratelimit.Usage{Seeded: true, AmountInCents: 400}) {
		t.Errorf("dispersion day: %+v, want the amount and no batch slot", u)
	}
	if g, err := b.Reserve(ctx, r); err != nil || !g.AlreadyHeld || g.UsedBatches != 1 || g.UsedAmountInCents != 400 {
		t.Fatalf("re-reserve: %+v %v", g, err)
	}
	// Posted on another day than reserved: another reservation, not the same.
	_, err = b.SeedBatches(ctx, rail.Wompi, tomorrow, 0)
	mustSeed(t, err)
	if _, err := b.Reserve(ctx, *sched("s1", acctA, later, tomorrow, 400)); !errors.Is(err, ratelimit.ErrReservationConflict) {
		t.Fatalf("same batch, other slot day: %v, want a conflict", err)
	}
	if ok, err := b.Release(ctx, r); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if u := usage(t, b, day, acctA); u.Batches != 0 {
		t.Errorf("send day after release: %+v", u)
	}
	if u := usage(t, b, later, acctA); u.AmountInCents != 0 {
		t.Errorf("dispersion day after release: %+v", u)
	}
}

// The batch cap counts the day a batch is sent: a day whose slots went to
// batches scheduled for later refuses one more batch that day, while the
// dispersion day still has all its slots; the amount counts on the
// dispersion day.
func TestBatchCapCountsTheSendDay(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	_, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0)
	mustSeed(t, err)
	_, err = b.SeedAmount(ctx, rail.Wompi, later, acctA, 0)
	mustSeed(t, err)
	for i := range 3 {
		if g, err := b.Reserve(ctx, *sched(fmt.Sprint("s", i), acctA, later, day, 300)); err != nil || !g.Granted {
			t.Fatalf("scheduled batch %d: %+v %v", i, g, err)
		}
	}
	// Today's slots are used: an immediate batch today is refused.
	if g, err := b.Reserve(ctx, *res("now", acctA, day, 1)); err != nil || g.Denied != ratelimit.DeniedBatchCount || g.UsedBatches != 3 {
		t.Fatalf("immediate batch on the send day: %+v %v, want denied by the batch count", g, err)
	}
	// So is one more scheduled batch sent today, even for another day.
	if g, err := b.Reserve(ctx, *sched("s3", acctA, tomorrow, day, 1)); !errors.Is(err, ratelimit.ErrNotSeeded) {
		t.Fatalf("fourth scheduled batch before its day is seeded: %+v %v", g, err)
	}
	_, err = b.SeedAmount(ctx, rail.Wompi, tomorrow, acctA, 0)
	mustSeed(t, err)
	if g, err := b.Reserve(ctx, *sched("s3", acctA, tomorrow, day, 1)); err != nil || g.Denied != ratelimit.DeniedBatchCount {
		t.Fatalf("fourth scheduled batch sent today: %+v %v, want denied by the batch count", g, err)
	}
	// On the dispersion day the slots are free; its amount is not.
	_, err = b.SeedBatches(ctx, rail.Wompi, later, 0)
	mustSeed(t, err)
	if g, err := b.Reserve(ctx, *res("then-big", acctA, later, 101)); err != nil || g.Denied != ratelimit.DeniedAmount || g.UsedAmountInCents != 900 {
		t.Fatalf("immediate batch over the dispersion day's amount: %+v %v, want denied by the amount", g, err)
	}
	if g, err := b.Reserve(ctx, *res("then", acctA, later, 100)); err != nil || !g.Granted || g.UsedBatches != 1 || g.UsedAmountInCents != 1000 {
		t.Fatalf("immediate batch on the dispersion day: %+v %v, want granted, the day's first slot", g, err)
	}
}

// Move follows a batch posted on a later day than its slot was reserved on:
// atomically, both or neither, never counting the batch twice.
func TestMoveReservation(t *testing.T) {
	rs := testenv.Redis(t)
	type setup func(t *testing.T, b *ratelimit.Budget)
	seedAll := func(t *testing.T, b *ratelimit.Budget) {
		for _, d := range []string{day, tomorrow, later} {
			_, err := b.Seed(context.Background(), rail.Wompi, d, acctA, 0, 0)
			mustSeed(t, err)
		}
	}
	tests := []struct {
		name       string
		cap        int
		limit      int64
		setup      setup
		from       *ratelimit.Reservation
		hold       bool // from is reserved before the move
		day, slot  string
		want       ratelimit.Grant
		wantErr    error
		wantUsages map[string]ratelimit.Usage // day -> acctA's usage after
	}{
		{name: "scheduled: the slot moves, the amount stays", cap: 3, limit: 1000, setup: seedAll,
			from: sched("s", acctA, later, day, 1000), hold: true, day: later, slot: tomorrow,
			// The amount day is at its limit with the batch's own amount:
			// the move does not count it twice.
			want: ratelimit.Grant{Granted: true, UsedAmountInCents: 1000, UsedBatches: 1},
			wantUsages: map[string]ratelimit.Usage{
				day: {Batches: 0}, tomorrow: {Batches: 1}, later: {AmountInCents: 1000},
			}},
		{name: "immediate: amount and slot move", cap: 3, limit: 1000, setup: seedAll,
			from: res("i", acctA, day, 400), hold: true, day: tomorrow, slot: tomorrow,
			want: ratelimit.Grant{Granted: true, UsedAmountInCents: 400, UsedBatches: 1},
			wantUsages: map[string]ratelimit.Usage{
				day: {}, tomorrow: {AmountInCents: 400, Batches: 1},
			}},
		{name: "denied: the batch keeps its reservation", cap: 3, limit: 1000,
			setup: func(t *testing.T, b *ratelimit.Budget) {
				seedAll(t, b)
				_, err := b.SeedBatches(context.Background(), rail.Wompi, tomorrow, 3)
				mustSeed(t, err)
			},
			from: sched("s", acctA, later, day, 400), hold: true, day: later, slot: tomorrow,
			want: ratelimit.Grant{Denied: ratelimit.DeniedBatchCount, UsedAmountInCents: 400, UsedBatches: 3},
			wantUsages: map[string]ratelimit.Usage{
				day: {Batches: 1}, tomorrow: {Batches: 3}, later: {AmountInCents: 400},
			}},
		{name: "denied by the new day's amount", cap: 3, limit: 1000,
			setup: func(t *testing.T, b *ratelimit.Budget) {
				seedAll(t, b)
				_, err := b.SeedAmount(context.Background(), rail.Wompi, tomorrow, acctA, 700)
				mustSeed(t, err)
			},
			from: res("i", acctA, day, 400), hold: true, day: tomorrow, slot: tomorrow,
			want: ratelimit.Grant{Denied: ratelimit.DeniedAmount, UsedAmountInCents: 700, UsedBatches: 0},
			wantUsages: map[string]ratelimit.Usage{
				day: {AmountInCents: 400, Batches: 1}, tomorrow: {AmountInCents: 700},
			}},
		{name: "not held: a plain reservation", cap: 3, limit: 1000, setup: seedAll,
			from: sched("s", acctA, later, day, 400), day: later, slot: tomorrow,
			want: ratelimit.Grant{Granted: true, UsedAmountInCents: 400, UsedBatches: 1},
			wantUsages: map[string]ratelimit.Usage{
				day: {}, tomorrow: {Batches: 1}, later: {AmountInCents: 400},
			}},
		{name: "new days not seeded", cap: 3, limit: 1000,
			setup: func(t *testing.T, b *ratelimit.Budget) {
				_, err := b.Seed(context.Background(), rail.Wompi, day, acctA, 0, 0)
				mustSeed(t, err)
			},
			from: res("i", acctA, day, 400), hold: true, day: tomorrow, slot: tomorrow,
			wantErr: ratelimit.ErrNotSeeded,
			wantUsages: map[string]ratelimit.Usage{
				day: {AmountInCents: 400, Batches: 1},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := newBudget(t, rs.Client(), rs.Prefix()+t.Name()+":", tc.cap, tc.limit)
			tc.setup(t, b)
			if tc.hold {
				if g, err := b.Reserve(ctx, *tc.from); err != nil || !g.Granted {
					t.Fatalf("reserve: %+v %v", g, err)
				}
			}
			g, err := b.Move(ctx, *tc.from, tc.day, tc.slot)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("move: %v, want %v", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				g.AccountLimitInCents, g.BatchCap = 0, 0
				if g != tc.want {
					t.Fatalf("move: %+v, want %+v", g, tc.want)
				}
			}
			for d, want := range tc.wantUsages {
				got := usage(t, b, d, acctA)
				if got.AmountInCents != want.AmountInCents || got.Batches != want.Batches {
					t.Errorf("%s: %+v, want amount %d, batches %d", d, got, want.AmountInCents, want.Batches)
				}
			}
			if !tc.want.Granted {
				return
			}
			// A repeated move counts nothing again; the moved reservation
			// releases from its new days.
			moved := *tc.from
			moved.Day, moved.SlotDay = tc.day, tc.slot
			if g, err := b.Move(ctx, *tc.from, tc.day, tc.slot); err != nil || !g.AlreadyHeld {
				t.Fatalf("repeated move: %+v %v", g, err)
			}
			if ok, err := b.Release(ctx, moved); err != nil || !ok {
				t.Fatalf("release after the move: %v %v", ok, err)
			}
			for _, d := range []string{day, tomorrow, later} {
				if u := usage(t, b, d, acctA); u.AmountInCents != 0 || u.Batches != 0 {
					t.Errorf("%s after release: %+v, want nothing", d, u)
				}
			}
		})
	}
}

// Move refuses when the batch holds another reservation than the one it
// names; nothing changes.
func TestMoveConflict(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	for _, d := range []string{day, tomorrow, later} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	if _, err := b.Reserve(ctx, *sched("s", acctA, later, day, 400)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Move(ctx, *sched("s", acctA, later, day, 500), later, tomorrow); !errors.Is(err, ratelimit.ErrReservationConflict) {
		t.Fatalf("move of another amount: %v, want a conflict", err)
	}
	// An immediate batch: its new amount day holds nothing, its old one
	// holds another amount.
	if _, err := b.Reserve(ctx, *res("i", acctA, day, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Move(ctx, *res("i", acctA, day, 200), tomorrow, tomorrow); !errors.Is(err, ratelimit.ErrReservationConflict) {
		t.Fatalf("move of an immediate batch of another amount: %v, want a conflict", err)
	}
	if u := usage(t, b, day, acctA); u.Batches != 2 || u.AmountInCents != 100 {
		t.Fatalf("send day after refused moves: %+v", u)
	}
	if u := usage(t, b, tomorrow, acctA); u.Batches != 0 || u.AmountInCents != 0 {
		t.Fatalf("next day after a refused move: %+v", u)
	}
}

// Release finds the slot day in the batch's record: a stale or missing
// hint costs a round trip, never a slot left taken or taken from another
// day.
func TestReleaseUsesTheRecordedSlotDay(t *testing.T) {
	rs := testenv.Redis(t)
	for _, hint := range []string{day, tomorrow, ""} {
		t.Run("hint="+hint, func(t *testing.T) {
			ctx := context.Background()
			b := newBudget(t, rs.Client(), rs.Prefix()+t.Name()+":", 3, 1000)
			for _, d := range []string{day, tomorrow, later} {
				_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
				mustSeed(t, err)
			}
			// Another batch holds a slot on the hinted day: it must stay.
			if _, err := b.Reserve(ctx, *res("other", acctA, tomorrow, 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Reserve(ctx, *sched("s", acctA, later, day, 400)); err != nil {
				t.Fatal(err)
			}
			ok, err := b.Release(ctx, ratelimit.Reservation{BatchID: "s", Day: later, SlotDay: hint})
			if err != nil || !ok {
				t.Fatalf("release: %v %v", ok, err)
			}
			if u := usage(t, b, day, acctA); u.Batches != 0 {
				t.Errorf("send day: %+v, want its slot back", u)
			}
			if u := usage(t, b, tomorrow, acctA); u.Batches != 1 || u.AmountInCents != 1 {
				t.Errorf("another day: %+v, want untouched", u)
			}
			if u := usage(t, b, later, acctA); u.AmountInCents != 0 {
				t.Errorf("dispersion day: %+v, want its amount back", u)
			}
		})
	}
}

// A day still ahead keeps its budget until TTL after it ends: a batch
// scheduled a week out keeps its amount reserved through its day.
func TestBudgetOfADayAheadOutlivesTheDay(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	ahead := time.Now().AddDate(0, 0, 7).Format(time.DateOnly)
	if _, err := b.SeedAmount(ctx, rail.Wompi, ahead, acctA, 0); err != nil {
		t.Fatal(err)
	}
	ttl, err := rs.Client().TTL(ctx, b.Key(ahead)).Result()
	if err != nil || ttl < 6*24*time.Hour+ratelimit.DefaultBudgetTTL {
		t.Fatalf("TTL of a day a week ahead: %v %v, want at least six days plus %v", ttl, err, ratelimit.DefaultBudgetTTL)
	}
}

// On a Redis Cluster a reservation whose two days differ is one script: the
// days' keys share a slot (else CROSSSLOT).
func TestBudgetOnRedisCluster(t *testing.T) {
	rc := testenv.RedisCluster(t)
	ctx := context.Background()
	b := newBudget(t, rc.Client(), rc.Prefix(), 3, 1000)
	for _, d := range []string{day, tomorrow, later} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	r := *sched("s", acctA, later, day, 400)
	if g, err := b.Reserve(ctx, r); err != nil || !g.Granted {
		t.Fatalf("reserve: %+v %v", g, err)
	}
	if g, err := b.Move(ctx, r, later, tomorrow); err != nil || !g.Granted {
		t.Fatalf("move: %+v %v", g, err)
	}
	if ok, err := b.Release(ctx, ratelimit.Reservation{BatchID: "s", Day: later, SlotDay: day}); err != nil || !ok {
		t.Fatalf("release with a stale slot day: %v %v", ok, err)
	}
	if u := usage(t, b, tomorrow, acctA); u.Batches != 0 {
		t.Fatalf("after release: %+v", u)
	}
	// Another rail's fields live in the same hashes: the same slot.
	for _, d := range []string{day, later} {
		_, err := b.Seed(ctx, rail.WEpayout, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	w := *sched("w", acctA, later, day, 400)
	w.Rail = rail.WEpayout
	if g, err := b.Reserve(ctx, w); err != nil || !g.Granted {
		t.Fatalf("reserve on wepayout: %+v %v", g, err)
	}
	if ok, err := b.Release(ctx, ratelimit.Reservation{BatchID: "w", Day: later, SlotDay: day}); err != nil || !ok {
		t.Fatalf("release on wepayout: %v %v", ok, err)
	}
	if u, err := b.Usage(ctx, rail.WEpayout, later, acctA); err != nil || u.AmountInCents != 0 {
		t.Fatalf("wepayout after release: %+v %v", u, err)
	}
}

// Holds answers whether a batch's reservation is still in the budget of
// its amount day: held after Reserve (a scheduled batch's on its
// dispersion day), gone after Release and after the day's budget is lost.
func TestHoldsReadsTheReservation(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	for _, d := range []string{day, later} {
		_, err := b.Seed(ctx, rail.Wompi, d, acctA, 0, 0)
		mustSeed(t, err)
	}
	holds := func(r *ratelimit.Reservation) bool {
		t.Helper()
		ok, err := b.Holds(ctx, *r)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	now, scheduled := res("h1", acctA, day, 100), sched("h2", acctA, later, day, 200)
	if holds(now) || holds(scheduled) {
		t.Fatal("held before any reservation")
	}
	for _, r := range []*ratelimit.Reservation{now, scheduled} {
		if g, err := b.Reserve(ctx, *r); err != nil || !g.Granted {
			t.Fatalf("reserve %s: %+v %v", r.BatchID, g, err)
		}
		if !holds(r) {
			t.Fatalf("%s: not held after its reservation", r.BatchID)
		}
	}
	if ok, err := b.Release(ctx, *now); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if holds(now) {
		t.Fatal("held after its release")
	}
	if err := rs.Client().Del(ctx, b.Key(later)).Err(); err != nil {
		t.Fatal(err)
	}
	if holds(scheduled) {
		t.Fatal("held after its day's budget was lost")
	}
	if _, err := b.Holds(ctx, ratelimit.Reservation{BatchID: "h3", Day: "not a day"}); !errors.Is(err, ratelimit.ErrInvalid) {
		t.Fatalf("a bad day: %v, want ErrInvalid", err)
	}
}

// The budgets' stamp names the Redis process that holds them. A
// reservation on another process (a restart from an older snapshot, a
// failover to a replica that missed the last writes) is refused with
// ErrServerChanged; Stamp names the process read before the rails'
// listings were counted, and refuses when it changed in between (what was
// counted may be lost with it).
func TestStampNamesTheProcessReadBeforeTheCount(t *testing.T) {
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	_, err := b.Seed(ctx, rail.Wompi, day, acctA, 0, 0)
	mustSeed(t, err)
	if g, err := b.Reserve(ctx, *res("s1", acctA, day, 100)); err != nil || !g.Granted {
		t.Fatalf("first reservation: %+v %v", g, err)
	}
	before, err := b.Server(ctx)
	if err != nil || before == "" {
		t.Fatalf("server: %q %v", before, err)
	}
	stamp := rs.Prefix() + "{budget}:server"
	if err := rs.RestartKeeping(ctx, b.Key(day), stamp); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, *res("s2", acctA, day, 100)); !errors.Is(err, ratelimit.ErrServerChanged) {
		t.Fatalf("a reservation on another process: %v, want ErrServerChanged", err)
	}
	if err := b.Stamp(ctx, before); !errors.Is(err, ratelimit.ErrServerChanged) {
		t.Fatalf("stamp with the process read before the restart: %v, want ErrServerChanged", err)
	}
	now, err := b.Server(ctx)
	if err != nil || now == before {
		t.Fatalf("server after the restart: %q %v", now, err)
	}
	if err := b.Stamp(ctx, now); err != nil {
		t.Fatal(err)
	}
	if g, err := b.Reserve(ctx, *res("s2", acctA, day, 100)); err != nil || !g.Granted {
		t.Fatalf("after the stamp: %+v %v", g, err)
	}
}

// A day centuries ahead (a scheduled batch's dispersion day) keeps its
// budget: its TTL, the default plus the time until the day ends, used to
// overflow time.Duration into a negative PEXPIRE that deleted the hash as
// soon as it was written, so the day never read as seeded and every
// reservation on it failed with ErrNotSeeded.
func TestFarDayKeepsItsBudget(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	b := newBudget(t, rs.Client(), rs.Prefix(), 3, 1000)
	for _, d := range []string{"2300-01-01", "2400-01-01", "9999-12-31"} {
		_, err := b.SeedAmount(ctx, rail.Wompi, d, acctA, 0)
		mustSeed(t, err)
		if u := usage(t, b, d, acctA); !u.Seeded {
			t.Fatalf("%s after its seed: %+v, want seeded", d, u)
		}
		_, err = b.SeedBatches(ctx, rail.Wompi, day, 0)
		mustSeed(t, err)
		if g, err := b.Reserve(ctx, *sched("far-"+d, acctA, d, day, 400)); err != nil || !g.Granted {
			t.Fatalf("%s: reserve %+v %v, want granted", d, g, err)
		}
	}
}
