package dispatch

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
)

// evictOnLate runs evict just as the create that lands late goes out.
type evictOnLate struct {
	*lateLanding
	evict func()
	once  sync.Once
}

func (l *evictOnLate) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && !strings.Contains(req.URL.Path, "token") {
		l.once.Do(l.evict)
	}
	return l.lateLanding.RoundTrip(req)
}

// Two faults: Redis, under an evicting policy, evicts a single-payout
// batch's record while its create is in flight (unanswered, applied a
// moment later). The job's lease renewal finds the record gone and stops
// it; the next attempt's claim is fresh, although the batch's index
// entries say an earlier attempt ran. It looked the payee up at once,
// found nothing and posted it again: paid twice.
func TestEvictedRecordWhileACreateIsInFlightIsNotPostedAgain(t *testing.T) {
	t.Parallel()
	evictedWhileInFlight(t, "evicted-rec", func(e *Engine, b payout.Batch) []string {
		return []string{e.st.batchKey(b.BatchID)}
	})
}

// The same, with the payee's index entry evicted too (a random eviction
// may take any key, and both were last written by the same attempt): the
// next attempt's dedupe finds no entry of the batch's, so nothing tells
// it that an earlier attempt ran. It must still not post the payee while
// the earlier create may land.
func TestEvictedRecordAndEntryWhileACreateIsInFlightIsNotPostedAgain(t *testing.T) {
	t.Parallel()
	evictedWhileInFlight(t, "evicted-rec-entry", func(e *Engine, b payout.Batch) []string {
		return []string{e.st.batchKey(b.BatchID), e.st.reqKey(b.Transactions[0].RequestID)}
	})
}

// evictedWhileInFlight deletes keys(e, b) (what an eviction may take) as
// the single-payout batch b's create goes out, the create applied 2.5 s
// after its client gave up, and fails unless the payee is paid once.
func evictedWhileInFlight(t *testing.T, prefix string, keys func(e *Engine, b payout.Batch) []string) {
	r := singleRails(t)[0](t)
	var evict func()
	late := &evictOnLate{lateLanding: &lateLanding{delay: 2500 * time.Millisecond}, evict: func() { evict() }}
	cb := sink(t)
	r.client = r.sim.(*sfptest.Server).Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = &http.Client{Transport: late} })
	f := newFixture(t, fixtureOpt{ownRedis: true})
	rdb := f.redis.Client()
	configSet(t, rdb, "maxmemory", "1gb", "maxmemory-policy", "allkeys-random")
	b := singleBatch(r, prefix, 1)
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	evict = func() {
		// What a random eviction may do to keys in use.
		if err := rdb.Del(context.Background(), keys(e, b)...).Err(); err != nil {
			t.Error(err)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	late.sent.Wait()
	if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s paid %d times, want 1", b.Transactions[0].RequestID, n)
	}
}
