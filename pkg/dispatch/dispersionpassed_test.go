package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A scheduled batch deferred by its dispersion day's amount budget waits
// for the next day: its dispersion day. From then on Wompi refuses it
// ("at least the next day" [doc]) and its amount day, the dispersion day,
// never gets room again. It used to be deferred DAILY_LIMIT every day
// until that day's budget expired from Redis (three days), then posted and
// refused; it must end REJECTED INVALID_DISPERSION_DATETIME at once,
// without a POST.
func TestScheduledBatchPastItsDispersionDayIsRejectedNotDeferred(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(func(c *Config) { c.DailyLimitCents = 150_000 })
	at := testStart.Add(23 * time.Hour) // tomorrow 09:00 Bogota
	a, b := simpleBatch("disp-a", 1), simpleBatch("disp-b", 1)
	a.Schedule.DispersionDatetime, b.Schedule.DispersionDatetime = &at, &at
	ctx := context.Background()
	if err := e.process(ctx, &a, nil, testLogger()); err != nil {
		t.Fatalf("a: %v", err)
	}
	if err := e.process(ctx, &b, nil, testLogger()); err != nil {
		t.Fatalf("b: %v", err)
	}
	if n := outcome(e, "deferred"); n != 1 {
		t.Fatalf("%d batches deferred, want b (the dispersion day's amount is used up)", n)
	}
	for range 2 {
		f.clock.Advance(24 * time.Hour) // past b's dispersion day's midnight, then a day more
		b.Attempt++
		if err := e.process(ctx, &b, nil, testLogger()); err != nil {
			t.Fatalf("b again: %v", err)
		}
	}
	if n := outcome(e, "deferred"); n != 1 {
		t.Fatalf("b deferred %d times, want once: past its dispersion day it can never be paid", n)
	}
	var rejected bool
	for _, s := range f.statuses() {
		if s.RequestID == b.Transactions[0].RequestID && s.Status == payout.StatusRejected {
			rejected = s.ReasonCode != nil && *s.ReasonCode == string(payout.ReasonInvalidDispersion)
		}
	}
	if !rejected {
		t.Fatal("b did not end REJECTED INVALID_DISPERSION_DATETIME")
	}
	for _, p := range f.tap.snapshot() {
		if p.key == b.BatchID {
			t.Fatal("b was posted past its dispersion day")
		}
	}
	f.noDoublePayment()
}

// A scheduled batch is posted now and paid on its dispersion day, which
// may be further ahead than the dedupe window: its entries in the
// duplicate index lived a window from the POST, so a copy republished
// after they expired, and before a window past the payment, passed the
// index and was paid again. They live a window from the dispersion.
func TestScheduledBatchEntriesLiveAWindowPastTheDispersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ahead := e.cfg.DedupeWindow + 10*24*time.Hour
	at := testStart.Add(ahead)
	b := simpleBatch("disp-far", 1)
	b.Schedule.DispersionDatetime = &at
	if err := e.process(context.Background(), &b, nil, testLogger()); err != nil {
		t.Fatal(err)
	}
	f.checkSubmitted(b)
	ttl := f.redis.Client().PTTL(context.Background(), e.st.reqKey(b.Transactions[0].RequestID)).Val()
	if want := e.cfg.DedupeWindow + ahead - time.Hour; ttl < want {
		t.Fatalf("the entry of a batch paid %v from now lives %v, want a dedupe window (%v) past its dispersion", ahead, ttl, e.cfg.DedupeWindow)
	}
}

// A recovery after a Redis loss rebuilds the duplicate index from Wompi's
// listing: the entries of a scheduled batch Wompi holds must live a window
// past its dispersion there too, as they did before the loss. They were
// written a window from the rebuild, so a copy republished after that and
// within a window of the payment passed the index and was paid again.
func TestRebuiltEntriesOfAScheduledBatchLiveAWindowPastTheDispersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	e := f.engine(nil)
	ahead := 20 * 24 * time.Hour
	at := testStart.Add(ahead).Truncate(time.Minute)
	b := simpleBatch("disp-rebuilt", 1)
	b.Schedule.DispersionDatetime = &at
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the scheduled batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	ctx := context.Background()
	key := e.st.reqKey(b.Transactions[0].RequestID)
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := f.engine(nil)
	other := simpleBatch("disp-rebuilt-next", 1)
	f.produce(f.topics.Batches, other)
	stop2, _ := f.run(e2)
	eventually(t, "the next batch handled after the recovery", func() bool { return outcome(e2, "submitted") == 1 })
	_ = stop2()
	ttl := f.redis.Client().PTTL(ctx, key).Val()
	if want := e.cfg.DedupeWindow + ahead - time.Hour; ttl < want {
		t.Fatalf("after a Redis loss the entry of a batch paid %v from now lives %v, want a dedupe window (%v) past its dispersion", ahead, ttl, e.cfg.DedupeWindow)
	}
	f.noDoublePayment()
}
