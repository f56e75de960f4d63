package dispatch

import (
	"context"
	"net/http"
	"testing"
	"time"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// A single-payout batch's record is gone while its create is in flight
// (unanswered, applied 2.5 s later), on a Redis that evicts nothing: an
// operator deleted it, or it ran out (RecordTTL equal to DEDUPE_WINDOW),
// while the payee's index entry, written by the same attempt, lives on.
// The next attempt's claim is fresh; only the index (dedupe's "before":
// the entry is already this batch's) says an earlier attempt ran and may
// have a create in flight. The eviction tests cover the same sequence
// under an evicting policy, where mayEvict alone makes the attempt wait:
// this one proves the index's word is heeded by itself. Ignored, the
// payee is looked up at once, found absent, and posted again: paid twice.
func TestRecordGoneWithoutEvictionWhileACreateIsInFlightIsNotPostedAgain(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	var drop func()
	late := &evictOnLate{lateLanding: &lateLanding{delay: 2500 * time.Millisecond}, evict: func() { drop() }}
	cb := sink(t)
	r.client = r.sim.(*sfptest.Server).Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = &http.Client{Transport: late} })
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	configSet(t, rdb, "maxmemory", "0", "maxmemory-policy", "noeviction")
	b := singleBatch(r, "record-gone", 1)
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	drop = func() {
		// The record only: the payee's index entry stays.
		if err := rdb.Del(context.Background(), e.st.batchKey(b.BatchID)).Err(); err != nil {
			t.Error(err)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	late.sent.Wait()
	if e.mayEvict.Load() {
		t.Fatal("the dispatcher reads Redis as evicting: the test proves nothing")
	}
	if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s paid %d times, want 1 (the index said an earlier attempt ran)", b.Transactions[0].RequestID, n)
	}
}
