package dispatch

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// postsBeforeLookup counts the POST /payouts that reach Wompi after a
// freeze ended (thawed) and before any lookup by reference followed it
// (GET /payouts?reference=); the background GET /health does not count as
// a lookup.
type postsBeforeLookup struct {
	thawed, lookedUp atomic.Bool
	late             atomic.Int32
}

func (p *postsBeforeLookup) RoundTrip(req *http.Request) (*http.Response, error) {
	payouts := strings.HasSuffix(req.URL.Path, "/payouts")
	switch {
	case !p.thawed.Load() || !payouts:
	case req.Method == http.MethodGet && req.URL.Query().Get("reference") != "":
		p.lookedUp.Store(true)
	case req.Method == http.MethodPost && !p.lookedUp.Load():
		p.late.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestPostFrozenPastTheFenceIsNotSent for a Wompi batch: the process
// freezes (a VM paused) between the lease check just before the batch's
// POST and its send, with Redis out of reach, so no renewal confirms the
// lease. Past the fence another replica may have taken the batch over,
// waited out its grace and proved it absent (then ended it REJECTED on its
// dispersion day, or started the key's new life past KeyMaxAge): thawed,
// the POST must not go out before a lookup, its deadline bounded by the
// lease's last confirmation (postContext), not counted from the thaw.
func TestWompiPostFrozenPastTheFenceIsNotSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	tr := &postsBeforeLookup{}
	var cut atomic.Bool
	e := f.engine(func(c *Config) {
		c.Redis.AddHook(cutRedis{&cut})
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: tr}), wompi.RailConfig{})
	})
	var frozen atomic.Int32
	limit := renewEvery(e.cfg.LeaseTTL) + e.cfg.RecoveryGrace // the fence, plus one POST
	e.whileSending = func(string) {
		if frozen.Add(1) != 1 {
			return
		}
		cut.Store(true)
		time.Sleep(limit + time.Second)
		tr.thawed.Store(true)
	}
	b := simpleBatch("frozen-wompi", 2)
	err := e.process(context.Background(), &b, nil, testLogger())
	cut.Store(false)
	if frozen.Load() == 0 {
		t.Fatalf("the POST was never reached (%v)", err)
	}
	if n := tr.late.Load(); n != 0 {
		t.Fatalf("%d POST(s) sent after a freeze past the lease fence, before any lookup (process: %v)", n, err)
	}
}
