package track

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// Faults lined up on a single payout of each rail: its hand-off and its
// schedule entry are missing (a partial Redis loss, a failover to a
// replica that missed the dispatcher's pipelined hand-off, while the
// schedule's ready marker stayed, so no rebuild lists the rails), its
// first callbacks were lost, and the first one the tracker reads names a
// status the mapping does not know (the provider's read answers it too:
// WEpayout's table is published incomplete). Nothing is emitted (202), but
// the payout is not final: as for any other webhook without hand-off it
// must be put on the schedule ("the payout stays polled"). It was not
// (enroll ran only after an emit), so when its final callbacks were lost
// too it was never polled and its request stayed where it was for ever.
func TestUnknownStatusWithoutHandOffIsStillPolled(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	sr, wr := f.sfpPayout(srv.URL, "98"), f.wepPayout(srv.URL, "99") // both stay pending
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	if _, err := s.sfpc.Create(ctx, sr); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wepc.Create(ctx, wr); err != nil {
		t.Fatal(err)
	}
	s.sfp.Advance(time.Second)
	s.wep.Advance(time.Second)
	s.wait(t)
	// A status neither mapping knows, delivered.
	s.sfp.SetFaults(sfptest.Faults{})
	s.wep.SetFaults(weptest.Faults{})
	s.settle(t, wr.ID, "8", sr.ID, "processing")
	if evs := f.statusEvents(); len(evs) != 0 {
		t.Fatalf("%d events for statuses we do not know", len(evs))
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 2 {
		t.Fatalf("scheduled: %d %v, want both: a payout without hand-off whose status we do not know is not polled", n, err)
	}
	// Both are paid; every callback of it is lost: only a poll sees it.
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.settle(t, wr.ID, "3", sr.ID, smartfastpay.StatusSuccess)
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for _, id := range []string{sr.ID, wr.ID} {
		if got := statusesOf(evs, id); fmt.Sprint(got) != "[APPROVED]" {
			t.Errorf("%s: %v, want [APPROVED] from the poll", id, got)
		}
	}
}

// failEnroll fails, once armed, the next ZADD NX on the polling schedule
// (enroll's Schedule): Redis failing over, or unreachable for a moment,
// right after the status gate's calls went through.
type failEnroll struct{ armed *atomic.Bool }

// isEnroll reports whether cmd is enroll's write: a ZADD NX on the
// polling schedule.
func isEnroll(cmd redis.Cmder) bool {
	a := cmd.Args()
	return cmd.Name() == "zadd" && len(a) > 2 && strings.HasSuffix(fmt.Sprint(a[1]), "{poll}") && strings.EqualFold(fmt.Sprint(a[2]), "nx")
}

func (h failEnroll) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h failEnroll) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isEnroll(cmd) && h.armed.CompareAndSwap(true, false) {
			cmd.SetErr(errors.New("injected: redis unreachable"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}
func (h failEnroll) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Two faults on one SmartFastPay payout: its hand-off is missing (lost
// with Redis), and Redis fails the one write that puts it on the polling
// schedule (enroll) while its first callback is handled, after the status
// was emitted. The callback was answered 200 (the failure only logged), so
// SmartFastPay never sent it again: the payout was on no schedule, and
// when its later callbacks were lost it stayed PENDING for ever. The
// callback must be answered 503, so that its retry puts the payout on the
// schedule (its status is then a duplicate).
func TestEnrollFailureIsRetriedByTheProvider(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	var armed atomic.Bool
	rdb := hookedClient(t, f.redis.Client(), failEnroll{armed: &armed})
	e, srv := f.singleEngine(s, func(c *Config) { c.Redis = rdb })
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "98") // stays onhold until SetStatus
	if _, err := s.sfpc.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	s.sfp.Advance(time.Second) // the onhold callback
	s.wait(t)
	if armed.Load() {
		t.Fatal("no schedule write was failed: the fault never happened")
	}
	if got := statusesOf(f.statusEvents(), r.ID); fmt.Sprint(got) != "[PENDING]" {
		t.Fatalf("%s: %v, want the PENDING of the onhold callback", r.ID, got)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled: %d %v: the callback was answered as handled with its payout on no schedule", n, err)
	}
	// Paid; every callback of it is lost: only a poll can see it.
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	if err := s.sfp.SetStatus(r.ID, smartfastpay.StatusSuccess); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	f.clock.Advance(time.Minute)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	if got := statusesOf(evs, r.ID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("%s: %v, want [PENDING APPROVED]", r.ID, got)
	}
}
