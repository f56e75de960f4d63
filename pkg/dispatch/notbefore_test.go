package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// lowBalanceBatch is a batch of AccountLow larger than its balance: Wompi
// refuses it EXC_008 (insufficient balance, refused for now).
func lowBalanceBatch(name string) payout.Batch {
	b := simpleBatch(name, 1)
	b.OriginAccountID = wompitest.AccountLow
	b.Transactions[0].AmountInCents = 50_000_000
	b.TotalAmountInCents = 50_000_000
	return b
}

// deferredCopies decodes the deferred topic.
func deferredCopies(f *fixture) []payout.Batch {
	f.t.Helper()
	var out []payout.Batch
	for _, r := range f.kafka.ReadAll(f.t, f.topics.BatchesDeferred) {
		var b payout.Batch
		if err := f.codec.DecodeBatch(r.Value, &b); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// Two faults: the dispatcher host's wall clock is stepped forward (a VM
// resumed with a stale RTC offset, a bad NTP source: here one year) for
// the short time in which a batch is refused for insufficient balance, and
// that clock is then corrected. deferBatch computes the copy's NotBefore
// from the stepped clock (now + DEFER_BALANCE_RETRY, a year ahead), and
// worker.handle waits for it with no bound: the copy sits at the head of
// its deferred partition, which stays paused. After the correction, the
// account is topped up and a second batch is deferred for balance in the
// same partition: neither is ever looked at again (until the bogus date),
// and every other deferred copy behind them, of every account and rail,
// waits with them. Their requests stayed DEFERRED, never paid and never
// final: the partition stalled although every fault was over. A NotBefore
// further ahead than any deferral sets is now handled at once.
func TestSteppedClockDoesNotStallTheDeferredPartition(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	// The dispatcher's clock only (Wompi's keeps the fixture's clock).
	host := wompitest.NewManualClock(testStart)
	e := f.engine(func(c *Config) {
		c.DeferBalanceRetry = 5 * time.Minute
		c.Now = host.Now
	})
	stop, _ := f.run(e)

	// Fault 1: the host clock is a year ahead while batch A is refused.
	host.Set(testStart.AddDate(1, 0, 0))
	a := lowBalanceBatch("stepped-a")
	f.produce(f.topics.Batches, a)
	eventually(t, "batch A deferred", func() bool { return outcome(e, "deferred") == 1 })

	// The clock is corrected; batch B is refused for balance too.
	host.Set(testStart.Add(time.Minute))
	b := lowBalanceBatch("stepped-b")
	f.produce(f.topics.Batches, b)
	// Wait for B's own copy and A's second one (A is due at once on the
	// corrected clock and still refused): a count of deferrals alone is
	// met by A's second copy while B is still in flight, and B handled
	// after the clocks move below is deferred to a time the manual clock
	// never reaches.
	eventually(t, "batch B deferred, and A again (A waits for its year-ahead NotBefore if not)", func() bool {
		var sawB, sawA2 bool
		for _, c := range deferredCopies(f) {
			sawB = sawB || c.BatchID == b.BatchID
			sawA2 = sawA2 || (c.BatchID == a.BatchID && c.Attempt == 2)
		}
		return sawB && sawA2
	})

	// The account is topped up, and a day goes by: both copies are long
	// due on any sane reading (B's NotBefore was 5 minutes after its
	// deferral; A's deferral, on the real timeline, was at 10:00).
	if _, err := f.sim.Client(nil).RechargeBalance(context.Background(), wompitest.AccountLow, 5_000_000_000); err != nil {
		t.Fatal(err)
	}
	host.Set(testStart.Add(24 * time.Hour))
	f.clock.Set(testStart.Add(24 * time.Hour))

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && outcome(e, "submitted") < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	paidA, paidB := f.sim.BatchLedger()[a.BatchID].Accepted, f.sim.BatchLedger()[b.BatchID].Accepted
	if paidA != 1 || paidB != 1 {
		var copies []string
		for _, c := range deferredCopies(f) {
			copies = append(copies, fmt.Sprintf("%s attempt %d notBefore %v", c.BatchID[:10], c.Attempt, c.NotBefore.UTC()))
		}
		_ = stop()
		t.Fatalf("a day after the clock was corrected and the balance topped up: batch A paid %d times, batch B %d times (want 1 and 1);"+
			" submitted %d, deferred %d; deferred topic: %v: the deferred partition waits for a NotBefore the stepped clock set a year ahead",
			paidA, paidB, outcome(e, "submitted"), outcome(e, "deferred"), copies)
	}
	_ = stop()
	if n := testutil.ToFloat64(e.m.notBeforeIgnored); n != 1 {
		t.Fatalf("deferred_not_before_ignored_total %v, want 1 (batch A's copy)", n)
	}
	f.checkSubmitted(a)
	f.checkSubmitted(b)
	f.noDoublePayment()
}

// The bound sits past every deferral the dispatcher sets: a copy due 25
// hours ahead (a DAILY_LIMIT deferral just after midnight, with an hour
// to spare) waits; one due further ahead than the bound is handled at
// once.
func TestNotBeforeBoundLetsEveryDeferralWait(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	e := f.engine(nil)
	if bound := e.maxDeferral(); bound != 26*time.Hour {
		t.Fatalf("bound %v with the defaults, want 26h (the README says so)", bound)
	}
	waits := simpleBatch("nb-waits", 1)
	due := f.clock.Now().Add(25 * time.Hour)
	waits.Attempt, waits.NotBefore = 1, &due
	f.produce(f.topics.BatchesDeferred, waits)
	stop, _ := f.run(e)
	time.Sleep(300 * time.Millisecond)
	if _, ok := f.sim.BatchLedger()[waits.BatchID]; ok || testutil.ToFloat64(e.m.notBeforeIgnored) != 0 {
		_ = stop()
		t.Fatal("a copy due 25 hours ahead was handled before its time")
	}
	f.clock.Set(due.Add(-27 * time.Hour)) // the clock stepped back: 27 hours ahead now
	eventually(t, "the copy handled once it lies past the bound", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if n := testutil.ToFloat64(e.m.notBeforeIgnored); n != 1 {
		t.Fatalf("deferred_not_before_ignored_total %v, want 1", n)
	}
	f.checkSubmitted(waits)
}

// A deferred partition is handled in offset order, its head waiting for
// its notBefore: a copy due in minutes queued behind one due the next day
// waited until that day. Copies due the next day and the others now go to
// different halves of the deferred topic. Here a DAILY_LIMIT copy is
// written first and an insufficient-balance copy second, with batch ids
// that Kafka's default partitioner puts in the same partition: after the
// top-up, the balance copy is paid while the other still waits.
func TestShortDeferralDoesNotWaitBehindTheNextDays(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, deferred: 2})
	e := f.engine(func(c *Config) { c.DeferBalanceRetry, c.DailyLimitCents = 5*time.Minute, 100_000_000 })
	keyed := kgo.StickyKeyPartitioner(nil).ForTopic(f.topics.BatchesDeferred)
	same := func(a, b payout.Batch) bool {
		return keyed.Partition(&kgo.Record{Key: []byte(a.BatchID)}, 2) == keyed.Partition(&kgo.Record{Key: []byte(b.BatchID)}, 2)
	}
	// AccountMain spends 40M of its 100M, and a batch of 61M waits for the next
	// day; AccountLow's 50M fits even where GET /limits gives only the
	// client's consumption (WOMPITEST_PUBLISHED_ONLY), and Wompi refuses it
	// for its balance.
	full := batch("day-full", map[string]int64{"full-0": 40_000_000}, "full-0")
	var long, short payout.Batch
	for i := 0; ; i++ {
		long = batch(fmt.Sprintf("over-%d", i), map[string]int64{fmt.Sprintf("over-%d-0", i): 61_000_000}, fmt.Sprintf("over-%d-0", i))
		short = lowBalanceBatch(fmt.Sprintf("low-%d", i))
		if same(long, short) {
			break
		}
	}
	f.produce(f.topics.Batches, full, long)
	stop, _ := f.run(e)
	eventually(t, "the next day's copy deferred", func() bool { return outcome(e, "deferred") == 1 })
	f.produce(f.topics.Batches, short)
	eventually(t, "the balance copy deferred", func() bool { return outcome(e, "deferred") == 2 })
	if _, err := f.sim.Client(nil).RechargeBalance(context.Background(), wompitest.AccountLow, 5_000_000_000); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(6 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && f.sim.BatchLedger()[short.BatchID].Accepted == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	_ = stop()
	if f.sim.BatchLedger()[short.BatchID].Accepted != 1 {
		t.Fatalf("the balance copy, due, waits behind the copy due the next day (deferred topic: %d records)", len(deferredCopies(f)))
	}
	if _, ok := f.sim.BatchLedger()[long.BatchID]; ok {
		t.Fatal("the next day's copy was posted before its day")
	}
}

// The deferred topic's halves: copies due the next day in the first, the
// others in the second, each by Kafka's key hash within its half; a topic
// of one partition (or an odd count's larger half) holds what is left.
// Other topics keep the default partitioner.
func TestWaitPartitionerHalves(t *testing.T) {
	t.Parallel()
	p := waitPartitioner{Partitioner: kgo.UniformBytesPartitioner(64<<10, true, true, nil), deferred: "d"}
	keyed := kgo.StickyKeyPartitioner(nil).ForTopic("d")
	marked := context.WithValue(context.Background(), waitsLong{}, true)
	for _, n := range []int{1, 2, 3, 12} {
		tp := p.ForTopic("d")
		for i := range 200 {
			key := []byte(fmt.Sprintf("b-%d", i))
			long := tp.Partition(&kgo.Record{Key: key, Context: marked}, n)
			short := tp.Partition(&kgo.Record{Key: key, Context: context.Background()}, n)
			h := n / 2
			switch {
			case h == 0:
				if long != 0 || short != 0 {
					t.Fatalf("n=1: %d %d", long, short)
				}
			case long != keyed.Partition(&kgo.Record{Key: key}, h) || short != h+keyed.Partition(&kgo.Record{Key: key}, n-h):
				t.Fatalf("n=%d key %s: long %d short %d", n, key, long, short)
			}
		}
	}
	if _, ok := p.ForTopic("other").(waitClasses); ok {
		t.Fatal("another topic takes the deferred topic's partitioner")
	}
}
