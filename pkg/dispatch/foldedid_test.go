package dispatch

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
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
			f, e, sim, rid := paidThenListedAfterLoss(t, "folded-"+name, func(on *atomic.Bool) http.RoundTripper {
				return foldOurIDs{base: http.DefaultTransport, on: on, space: space}
			})
			if n := sim.Accepted(rid); n != 1 {
				t.Fatalf("%s paid %d times, want 1 (complete epoch %q, lookups skipped %v)", rid, n, f.epochField("complete"),
					testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(rail.WEpayout))))
			}
		})
	}
}
