package track

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// silentPendingThenLost hands off a WEpayout and a SmartFastPay payout that
// stay pending, every webhook of both simulators dropped, polls them to
// PENDING with e, then moves the clock by age and flushes Redis: their
// hand-offs and the schedule are gone.
func (f *fixture) silentPendingThenLost(s *singles, e *Engine, callback string, age time.Duration) (wp, sp rail.PayoutRequest) {
	t := f.t
	t.Helper()
	s.wep.SetFaults(weptest.Faults{WebhookDropRate: 1})
	s.sfp.SetFaults(sfptest.Faults{WebhookDropRate: 1})
	wp, sp = f.wepPayout(callback, "99"), f.sfpPayout(callback, "99") // both stay pending
	f.handOff(s.wepc, wp)
	f.handOff(s.sfpc, sp)
	ctx := context.Background()
	if res, err := e.PollOnce(ctx); err != nil || res.Transitions != 2 {
		t.Fatalf("first poll: %+v %v, want both PENDING", res, err)
	}
	f.clock.Advance(age)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	return wp, sp
}

// settledUnseen settles wp paid and sp failed, their webhooks lost, polls
// rounds times an hour apart with every engine, and checks that the log
// is forward-only and ends each request in its final status.
func (f *fixture) settledUnseen(s *singles, wp, sp rail.PayoutRequest, rounds int, engines ...*Engine) {
	t := f.t
	t.Helper()
	s.settle(t, wp.ID, "3", sp.ID, "failed")
	for range rounds {
		f.clock.Advance(time.Hour)
		for _, e := range engines {
			if _, err := e.PollOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	evs := f.statusEvents()
	checkLog(t, evs)
	for id, want := range map[string]string{wp.ID: "APPROVED", sp.ID: "FAILED"} {
		if got := statusesOf(evs, id); len(got) == 0 || string(got[len(got)-1]) != want {
			t.Errorf("%s: %v, want it to end %s", id, got, want)
		}
	}
}

// Two single payouts still pending three days after their creation (a
// SmartFastPay hold, a WEpayout payment awaiting): older than
// RebuildLookback. Redis then loses everything (their hand-offs, the
// schedule), and the webhooks of their final statuses are lost. The
// rebuild listed the single rails' payouts of the last RebuildLookback
// only: these two were never polled again, and their requests stayed
// PENDING for ever, with nothing on the schedule for an operator to see.
// As for Wompi's (rebuildPendingLookback), the payouts not final are
// listed further back.
func TestRebuildAfterRedisLossSchedulesOlderPendingSinglePayouts(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	e, srv := f.singleEngine(s, nil)
	wp, sp := f.silentPendingThenLost(s, e, srv.URL, 72*time.Hour)
	ctx := context.Background()
	res, err := e.PollOnce(ctx)
	if err != nil || !res.Rebuilt || res.Claimed != 2 {
		t.Fatalf("poll after the loss: %+v %v, want both single payouts back on the schedule", res, err)
	}
	f.settledUnseen(s, wp, sp, 1, e)
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 0 {
		t.Fatalf("scheduled at the end: %d %v", n, err)
	}
}

// Two tracker replicas on one Redis, one of them without the single-payout
// rails' credentials (a rolling change of them, or a replica whose secret
// did not mount): it answers their webhooks 404 and reschedules their
// payouts, so that the replica with the credentials tracks them. Redis
// then loses everything, and the replica without the rails wins the
// rebuild: it lists Wompi only and marks the schedule ready. The replica
// with the rails saw the marker and never listed its rails: the pending
// SmartFastPay and WEpayout payouts, their hand-offs lost, were never
// polled again, and with their final webhooks lost their requests stayed
// PENDING for ever. A rail the marker does not cover is listed by the
// next replica that has it.
func TestRebuildByAReplicaWithoutARailStillListsThatRail(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	withRails, srv := f.singleEngine(s, nil)
	wompiOnly, _ := f.engine(nil)
	wp, sp := f.silentPendingThenLost(s, withRails, srv.URL, time.Hour)
	ctx := context.Background()
	if res, err := wompiOnly.PollOnce(ctx); err != nil || !res.Rebuilt {
		t.Fatalf("poll of the replica without the rails after the loss: %+v %v, want it to rebuild", res, err)
	}
	if res, err := withRails.PollOnce(ctx); err != nil || res.Claimed != 2 {
		t.Fatalf("poll of the replica with the rails: %+v %v, want both single payouts back on the schedule", res, err)
	}
	f.settledUnseen(s, wp, sp, 2, withRails, wompiOnly)
	// Once every rail is listed, neither replica rebuilds again.
	for _, e := range []*Engine{wompiOnly, withRails} {
		if res, err := e.PollOnce(ctx); err != nil || res.Rebuilt {
			t.Fatalf("a later poll: %+v %v, want no rebuild", res, err)
		}
	}
}
