package dispatch

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// negativeLimits answers GET /limits with a negative dailyConsumed while
// bad is set: the figure UsageOn refuses as a retryable error (Wompi's
// mistake), for as long as Wompi keeps answering it. Every other call goes
// through.
type negativeLimits struct {
	base http.RoundTripper
	bad  atomic.Bool
}

func (t *negativeLimits) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.bad.Load() && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/limits") {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(`{"numberOfTransactionsConsumed":0,"limits":{"dailyLimit":150000000000,"dailyAvailable":150000000000,"dailyConsumed":-5}}`)),
			Request: req}, nil
	}
	return t.base.RoundTrip(req)
}

// Two faults: a Wompi batch's budget is not seeded yet (a new day, or
// Redis lost it), and Wompi's GET /limits keeps failing (here: answering a
// negative consumption, which UsageOn reads as a retryable error; a
// /limits outage alone is the same) while every other call of Wompi
// answers. The seed's failure must count against the dispatcher's
// patience like any other failing call of Wompi: past RailPatience the
// batch waits on the deferred topic (DEFERRED RAIL_UNAVAILABLE) and the
// partition's next batch, of another rail, is paid. Retried in place
// without end, it held the partition for as long as /limits failed.
func TestLimitsFailingForEverDoesNotHoldThePartition(t *testing.T) {
	t.Parallel()
	sfp := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{partitions: 1})
	tr := &negativeLimits{base: f.tap}
	tr.bad.Store(true)
	e := sfp.engine(f, func(c *Config) {
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: tr}), wompi.RailConfig{})
		c.RailPatience, c.RailRetry = time.Second, 2*time.Second
	})
	bw, bs := simpleBatch("limits-negative", 2), singleBatch(sfp, "limits-negative-sfp", 2)
	f.produce(f.topics.Batches, bw, bs)
	stop, _ := f.run(e)
	eventually(t, "the SmartFastPay batch paid while Wompi's /limits fails", func() bool { return outcome(e, "submitted") == 1 })
	if n := f.sim.BatchLedger()[bw.BatchID].Accepted; n != 0 {
		t.Fatal("the Wompi batch was created without a seeded budget")
	}
	f.deferredUnavailable(bw)
	f.checkSinglePaid(sfp, bs, nil)

	tr.bad.Store(false)
	f.clock.Advance(3 * time.Second) // the deferred copy is due
	eventually(t, "the Wompi batch paid once /limits answers", func() bool { return outcome(e, "submitted") == 2 })
	_ = stop()
	f.noDoublePayment()
	f.checkSubmitted(bw)
}
