package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The peek in wompiUnavailable reads back what an earlier attempt indexed
// (from a review): when one kept payee's entry is gone (evicted under a
// maxmemory policy, or cut by an older snapshot) while the dropped payee's
// "#r" entry is still there, the peek reported whole=false and the batch
// was deferred whole again: the payee dropped for an unknown bank, REJECTED
// (final) on the first attempt, got DEFERRED after it.
func TestPeekWithOneEntryGoneStillKeepsTheUnknownBankDropOut(t *testing.T) {
	f := newFixture(t, fixtureOpt{partitions: 1})
	b := simpleBatch("bank-outage-evicted", 3)
	b.Transactions[1].Beneficiary.BankCode = "9999"
	dropped := b.Transactions[1].RequestID
	timing := func(c *Config) {
		c.DailyLimitCents, c.RailPatience, c.RailRetry = 150_000, 500*time.Millisecond, 2*time.Second
	}
	e1 := f.engine(timing)
	bb := b
	if err := e1.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	idx := byStatus(f.statuses())
	if len(idx[dropped][payout.StatusRejected]) != 1 {
		t.Fatalf("first attempt: dropped %v", idx[dropped])
	}
	// One kept payee's index entry is gone (eviction).
	if err := f.redis.Client().Del(context.Background(), f.redis.Prefix()+"{dispatch}:req:"+b.Transactions[2].RequestID).Err(); err != nil {
		t.Fatal(err)
	}
	f.wompiDown(true)
	e2 := f.engine(timing)
	bb = b
	if err := e2.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatalf("the original read again: %v", err)
	}
	idx = byStatus(f.statuses())
	if d := idx[dropped][payout.StatusDeferred]; len(d) != 0 {
		t.Errorf("the payee dropped for an unknown bank got DEFERRED %s after its REJECTED", *d[0].ReasonCode)
	}
}
