package dispatch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// foldOurIDs rewrites WEpayout's listing, while on, to name our ids as a
// provider may echo them: upper-cased, or with spaces around them.
type foldOurIDs struct {
	base  http.RoundTripper
	on    *atomic.Bool
	space bool
}

func (s foldOurIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || !s.on.Load() || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/v2/payout/payments") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = externalID.ReplaceAllFunc(body, func(m []byte) []byte {
		v := string(m[len(`"external_id":"`) : len(m)-1])
		if s.space {
			return []byte(`"external_id":" ` + v + ` "`)
		}
		return []byte(`"external_id":"` + strings.ToUpper(v) + `"`)
	})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// Two faults: a WEpayout payee is paid and the dispatcher crashes before
// recording it; Redis is lost, and the recovery's listing echoes the
// payee's id in upper case, or with spaces around it. The rebuilt index
// must not prove the payee new (a POST without a lookup would pay it
// again): an id no requestId can be leaves the epoch incomplete, and the
// lower-case form of an upper-case id is marked suspect, so the payee is
// looked up, and the lookup refuses to call it absent.
func TestFoldedListingIDIsNeverProvenNew(t *testing.T) {
	for _, space := range []bool{false, true} {
		name := "upper"
		if space {
			name = "spaces"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpt{ownRedis: true})
			sim := weptest.NewTestServer(t, weptest.Config{})
			var on atomic.Bool
			cl := sim.Client(wepayout.Config{NotificationURL: sink(t),
				HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: foldOurIDs{base: http.DefaultTransport, on: &on, space: space}}})
			r := singleRails(t)[1](t)
			r.client, r.sim = cl, sim
			b := singleBatch(r, "folded-"+name, 1)
			rid := b.Transactions[0].RequestID
			untilCrash(t, f, r.engine(f, nil), b)
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
			if n := sim.Accepted(rid); n != 1 {
				t.Fatalf("%s paid %d times, want 1 (complete epoch %q, lookups skipped %v)", rid, n, f.epochField("complete"),
					testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(rail.WEpayout))))
			}
		})
	}
}
