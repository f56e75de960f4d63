package dispatch

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
)

// applied5xxStaleThenTaken plays three answers of a WEpayout that refuses
// a second payment under an invoice it already holds: the first create is
// applied and answered 503 (outcome unknown); the first lookup by
// external_id after it is answered by a listing behind the write (an
// empty page); and any later create of an invoice the simulator already
// holds is refused 400 "The invoice has already been taken." without
// reaching it (the answer client_test.go's TestErrorClasses gives a 400).
type applied5xxStaleThenTaken struct {
	sim                  *weptest.Server
	posts, stale, refuse atomic.Int32
}

func (a *applied5xxStaleThenTaken) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Get("external_id") != "" && a.posts.Load() > 0 && a.stale.Add(1) == 1 {
		return jsonAnswer(req, http.StatusOK, `{"data":[],"meta":{"current_page":1,"last_page":1,"per_page":100,"total":0}}`), nil
	}
	if req.Method != http.MethodPost {
		return http.DefaultTransport.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var sent struct {
		Invoice string `json:"invoice"`
	}
	_ = json.Unmarshal(body, &sent)
	if a.posts.Add(1) == 1 {
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return jsonAnswer(req, http.StatusServiceUnavailable, `{"message":"Service Unavailable"}`), nil
	}
	if a.sim.Accepted(sent.Invoice) > 0 {
		a.refuse.Add(1)
		return jsonAnswer(req, http.StatusBadRequest, `{"message":"The invoice has already been taken."}`), nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Two faults together on WEpayout: a create is applied and answered 503,
// and the lookup after the grace reads a listing behind that write (empty),
// so the payee is posted again; WEpayout refuses that second create as a
// duplicate invoice (a 400). Taken as a validation refusal, the payee was
// REJECTED while WEpayout holds, and pays, its payout. The answer proves
// the payout exists: it is an unknown outcome, the next lookup adopts it.
func TestDuplicateInvoiceRefusalAfterAStaleLookupIsNotARejection(t *testing.T) {
	r := singleRails(t)[1](t)
	tr := &applied5xxStaleThenTaken{sim: r.sim.(*weptest.Server)}
	r = r.through(t, tr)
	f := newFixture(t, fixtureOpt{})
	b := singleBatch(r, "dup-invoice", 1)
	rid := b.Transactions[0].RequestID
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") >= 1 })
	_ = stop()
	if tr.stale.Load() == 0 || tr.refuse.Load() == 0 {
		t.Fatalf("the faults were not met: %d stale lookups, %d duplicate refusals", tr.stale.Load(), tr.refuse.Load())
	}
	if rej := byStatus(f.statuses())[rid][payout.StatusRejected]; len(rej) != 0 {
		t.Fatalf("REJECTED %+v for a payee WEpayout holds a payout of (accepted %d)", rej, r.sim.Accepted(rid))
	}
	f.checkSinglePaid(r, b, nil)
}
