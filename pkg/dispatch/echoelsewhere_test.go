package dispatch

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// Two faults: WEpayout echoes our ids in another case in its listing (the
// case a recovery marks suspect: an id in upper case, its lower-case form
// suspect; or a mixed-case id of ours in lower case), and after a Redis
// loss a requestId it paid is sent again on another rail (Wompi, or
// SmartFastPay). Listed exactly, the copy is a duplicate
// (TestPaidOnASingleRailStaysUsedAfterARedisLoss); listed in another case,
// the copy's batch took the suspect mark over (or found its own key free),
// and its lookup, if any, asks its own rail only: the payee was paid a
// second time, on the other rail.
func TestEchoedOnAnotherRailIsNotPaidAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		lower  bool // WEpayout lists our mixed-case ids in lower case
		second string
	}{
		{"upper-then-wompi", false, "wompi"},
		{"upper-then-other", false, "other"},
		{"lower-then-wompi", true, "wompi"},
		{"lower-then-other", true, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mks := singleRails(t)
			sfpRail, wep := mks[0](t), mks[1](t)
			on := &atomic.Bool{}
			wep = wep.through(t, foldOurIDs{base: http.DefaultTransport, on: on, lower: tc.lower})
			rs := []singleRail{sfpRail, wep}
			f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
			id := func(s string) string {
				if tc.lower {
					return strings.ToUpper(s[:1]) + s[1:]
				}
				return s
			}
			x1, x2, y1 := id("echo-x-1"), id("echo-x-2"), id("echo-y-1")
			amounts := map[string]int64{x1: 100_000, x2: 200_000, y1: 300_000}
			a := onRail(wep, batch("echo-a", amounts, x1, x2))
			c := batch("echo-c", amounts, x2, y1)
			paidOnSecond := func(id string) int {
				le, _ := f.sim.LedgerEntry(id)
				return le.Accepted
			}
			if tc.second == "other" {
				c = onRail(sfpRail, c)
				paidOnSecond = sfpRail.sim.Accepted
			}
			e := f.engine(bothSingles(rs))
			f.produce(f.topics.Batches, a)
			stop, _ := f.run(e)
			eventually(t, "batch a submitted", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			// From now on WEpayout lists our ids in another case.
			on.Store(true)
			if err := f.redis.FlushAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			e = f.engine(bothSingles(rs))
			f.produce(f.topics.Batches, c)
			stop, _ = f.run(e)
			eventually(t, "batch c submitted", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			if n := wep.sim.Accepted(x2); n != 1 {
				t.Fatalf("%s paid %d times on WEpayout, want 1", x2, n)
			}
			if n := paidOnSecond(x2); n != 0 {
				t.Fatalf("%s, paid on WEpayout before the Redis loss (listed in another case), was paid %d more times on the second rail", x2, n)
			}
			if n := paidOnSecond(y1); n != 1 {
				t.Fatalf("%s paid %d times on the second rail, want 1", y1, n)
			}
			if dlq := f.duplicateCopies(); dlq[x2] != c.BatchID || len(dlq) != 1 {
				t.Fatalf("DLQ copies %v: want %s from batch c only", dlq, x2)
			}
		})
	}
}
