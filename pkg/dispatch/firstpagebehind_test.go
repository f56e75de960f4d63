package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// The mirror of TestWompiNewestFirstListingWithAPageBehindIsNoProof: the
// batch paying x-1 is the newest when Redis is lost, and the recovery's
// listing of every batch (newest first, two a page) has its page 1
// answered by a server copy one batch behind, its later pages by
// up-to-date copies. The later pages announce one batch more than page 1
// (a total that grew, which the walk takes), and sit one place later: the
// newest batch is on no page the walk read. x-1 was never indexed, and a
// later batch sending x-1 again found it new and paid it twice.
func TestWompiNewestFirstFirstPageBehindIsNoProof(t *testing.T) {
	t.Parallel()
	var on atomic.Bool
	tr := &wompiNewestFirst{newestFirstLag{on: &on, behind: 1}}
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true})
	f.tap.base = tr
	amounts := map[string]int64{"x-1": 100_000, "y-1": 200_000}
	var bs []payout.Batch
	for i := range 4 {
		bs = append(bs, simpleBatch(fmt.Sprintf("fp-older-%d", i), 1))
	}
	bs = append(bs, batch("fp-paying", amounts, "x-1")) // the newest
	e := f.engine(nil)
	stop, _ := f.run(e)
	for i := range bs {
		f.produce(f.topics.Batches, bs[i])
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == i+1 })
	}
	_ = stop()
	on.Store(true)
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e = f.engine(nil)
	f.produce(f.topics.Batches, batch("fp-copy", amounts, "x-1", "y-1"))
	stop, _ = f.run(e)
	eventually(t, "the copy handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") >= 1 })
	_ = stop()
	if tr.served.Load() == 0 {
		t.Fatal("the recovery never read the page behind")
	}
	if le, _ := f.sim.LedgerEntry("x-1"); le.Accepted != 1 {
		t.Fatalf("x-1 paid %d times, want 1", le.Accepted)
	}
	if le, _ := f.sim.LedgerEntry("y-1"); le.Accepted != 1 {
		t.Fatalf("y-1 paid %d times, want 1", le.Accepted)
	}
}

// The WEpayout mirror: a payee is paid (the newest payment) and the
// dispatcher crashes before recording it, then Redis is lost; the
// recovery's listing (newest first, two a page) has its page 1 answered
// by a replica one payment behind, the later pages by up-to-date ones,
// which announce one payment more. The paid payee is on no page the walk
// read; the epoch was marked complete and the batch read again proved the
// payee new and posted it without a lookup: paid twice.
func TestWEpayoutNewestFirstFirstPageBehindIsNoProof(t *testing.T) {
	t.Parallel()
	var on atomic.Bool
	tr := &wepNewestFirst{newestFirstLag{on: &on, behind: 1}}
	const label = "r46-fp"
	f := newFixture(t, fixtureOpt{ownRedis: true})
	sim := weptest.NewTestServer(t, weptest.Config{})
	r := singleRails(t)[1](t)
	r.client = sim.Client(wepayout.Config{NotificationURL: sink(t), PageSize: 2,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tr}})
	r.sim = sim
	for i := range 4 {
		other := singleBatch(r, fmt.Sprintf("%s-older-%d", label, i), 1)
		if _, err := r.client.Create(context.Background(), singleRequest(r.name, &other.Transactions[0])); err != nil {
			t.Fatal(err)
		}
	}
	b := singleBatch(r, label, 1)
	untilCrash(t, f, r.engine(f, nil), b) // the newest payment
	on.Store(true)
	if err := f.redis.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := r.engine(f, func(c *Config) { c.RailPatience = 2 * time.Second })
	stop, _ := f.run(e)
	eventually(t, "the batch read again handled", func() bool {
		return outcome(e, "submitted")+outcome(e, "deferred") >= 1
	})
	_ = stop()
	if tr.served.Load() == 0 {
		t.Fatal("the recovery never read the page behind")
	}
	if n := sim.Accepted(b.Transactions[0].RequestID); n != 1 {
		t.Fatalf("%s paid %d times, want 1", b.Transactions[0].RequestID, n)
	}
}
