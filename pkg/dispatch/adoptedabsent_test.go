package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// listingMisreads rewrites every GET /payouts/{id}/transactions answer in
// one of two ways, the payee of reference ref being in the payout all the
// while:
//   - race: ref's record is replaced by a second copy of another record,
//     as offset pages over a sort key the payout's transactions tie on (one
//     createdAt for the whole batch) read one transaction twice and another
//     never, the same way at every read of the same pages;
//   - upper: ref's record is listed under its reference in upper case (a
//     reference Wompi normalised, or any listed reference that is not ours).
type listingMisreads struct {
	base  http.RoundTripper
	ref   string
	upper bool
}

func (l listingMisreads) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/payouts/") ||
		!strings.HasSuffix(req.URL.Path, "/transactions") {
		return resp, err
	}
	return rewriteAnswer(resp, l.misread)
}

// misread rewrites a transactions listing's body as l says.
func (l listingMisreads) misread(raw []byte) ([]byte, error) {
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, err
	}
	data, _ := env["data"].(map[string]any)
	recs, _ := data["records"].([]any)
	var other any
	for _, r := range recs {
		if m, _ := r.(map[string]any); m != nil && m["reference"] != l.ref {
			other = r
		}
	}
	for i, r := range recs {
		m, _ := r.(map[string]any)
		if m == nil || m["reference"] != l.ref {
			continue
		}
		if l.upper {
			m["reference"] = strings.ToUpper(l.ref)
		} else if other != nil {
			recs[i] = other
		}
	}
	out, _ := json.Marshal(env)
	return out, nil
}

// Two faults: a POST carrying both payees whose answer is lost (the normal
// case: the next attempt keeps both and adopts the payout), and a
// transactions listing that reads payee 0's transaction never (a page race
// that repeats at every read). The listing is one short of the payout's
// count, so the attempt reads again until the payout is final and
// track.ShortListingPatience has passed; then unbankedListed takes the
// short listing as the payout's word, and finish REJECTED payee 0 (a kept
// payee the adopted payout "does not hold"), which Wompi pays: the
// marketplace sends it again under a new requestId, paid twice. Before
// db02e05 it was SUBMITTED without a transaction id; a short listing past
// patience proves only that Wompi counts one it does not list.
func TestKeptPayeeNotRejectedOnAShortListingPastPatience(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	const name = "adopted-absent-race"
	f.tap.base = listingMisreads{base: http.DefaultTransport, ref: name + "-0"}
	b, timing := postAppliedAnswerLost(t, f, name)
	e2 := f.engine(timing)
	b2 := b
	if err := e2.process(context.Background(), &b2, nil, testLogger()); err == nil {
		t.Log("the first attempt after the lost answer ended the batch")
	}
	f.noneRejectedWhilePaid(t, b, "the listing is short of the payout's count")
	f.sim.Advance(73 * time.Hour)
	f.processUntilEnded(e2, b, 3)
	f.noDoublePayment()
	f.noneRejectedWhilePaid(t, b, "a final payout's listing short past patience, the payee in it")
	f.checkLifecycles()
}

// Two faults: the lost answer of a POST carrying both payees, and a
// listing complete by count whose record of payee 0 carries a reference
// that is not byte for byte ours (here its upper case). The payee reads as
// absent, no transaction is refless, the count is met: finish REJECTED a
// payee Wompi pays. A listed reference that names no request of the batch
// may be one of the absent ones, as a refless one may.
func TestKeptPayeeNotRejectedWhenItsReferenceIsListedOtherwise(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	const name = "adopted-absent-case"
	f.tap.base = listingMisreads{base: http.DefaultTransport, ref: name + "-0", upper: true}
	b, timing := postAppliedAnswerLost(t, f, name)
	e2 := f.engine(func(c *Config) {
		timing(c)
		c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: f.tap}), wompi.RailConfig{})
	})
	f.processUntilEnded(e2, b, 3)
	f.noDoublePayment()
	f.noneRejectedWhilePaid(t, b, "its reference listed in another case")
	if s := byStatus(f.statuses())[b.Transactions[0].RequestID][payout.StatusSubmitted]; len(s) == 0 {
		t.Errorf("%s, in the payout Wompi holds, has no SUBMITTED", b.Transactions[0].RequestID)
	}
	f.checkLifecycles()
}
