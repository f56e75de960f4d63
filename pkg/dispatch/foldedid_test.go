package dispatch

import (
	"bytes"
	"context"
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
	lower bool // lower-cased instead of upper-cased
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
		if s.lower {
			return []byte(`"external_id":"` + strings.ToLower(v) + `"`)
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
//
// A rail may also echo a mixed-case id of ours in lower case: the index
// then holds the lower-case form, and the id itself is never proven new
// while that form is indexed.
func TestFoldedListingIDIsNeverProvenNew(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		fold         foldOurIDs
	}{
		{"upper", "folded-upper", foldOurIDs{}},
		{"spaces", "folded-spaces", foldOurIDs{space: true}},
		{"lower", "Folded-Lower", foldOurIDs{lower: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, e, sim, rid := paidThenListedAfterLoss(t, tc.prefix, func(on *atomic.Bool) http.RoundTripper {
				fold := tc.fold
				fold.base, fold.on = http.DefaultTransport, on
				return fold
			})
			if n := sim.Accepted(rid); n != 1 {
				t.Fatalf("%s paid %d times, want 1 (complete epoch %q, lookups skipped %v)", rid, n, f.epochField("complete"),
					testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(rail.WEpayout))))
			}
		})
	}
}

// dedupe reads the lower-case form of each single-payout requestId that
// has upper-case letters against that requestId alone (their keys follow
// the batch's in order): only the one whose lower-case form the index
// holds loses its proof; a lower-case id needs no second read.
func TestDedupeReadsEachLowerCaseFormInOrder(t *testing.T) {
	f := newFixture(t, fixtureOpt{})
	r := singleRails(t)[0](t)
	e := r.engine(f, nil)
	ctx := context.Background()
	if err := e.st.rdb.Set(ctx, e.st.reqKey("cc-3"), listedMark(r.name), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.claim(ctx, "w", "e0", "b-fold"); err != nil {
		t.Fatal(err)
	}
	ids := []string{"Aa-1", "bb-2", "Cc-3", "Dd-4"}
	v, news, complete, err := e.st.dedupe(ctx, "w", "e0", "b-fold", r.name, ids, bytes.Repeat([]byte{modeKeep}, len(ids)))
	if err != nil || string(v) != "kkkk" || string(news) != "nn-n" || !complete {
		t.Fatalf("verdicts %q, new %q, complete %v (%v); want kkkk, nn-n (Cc-3's lower-case form is indexed), complete", v, news, complete, err)
	}
}
