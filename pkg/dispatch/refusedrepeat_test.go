package dispatch

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// appliedStaleThenRefused plays three answers of a single-payout rail
// whose first create of a payee is still being paid when it is posted
// again: the first create is applied and answered 503 (outcome unknown);
// the first lookup after it reads a listing behind that write (an empty
// page); and a later create of an id the simulator already holds is
// refused with status and body, without reaching the simulator.
type appliedStaleThenRefused struct {
	sim                  singleSim
	name                 rail.Name
	id                   string // the payee's requestId
	status               int
	body                 string
	posts, stale, refuse atomic.Int32
}

// singleCall says whether req is a lookup by our id, or a create, on the
// single-payout rail name.
func singleCall(name rail.Name, req *http.Request) (lookup, create bool) {
	switch name {
	case rail.SmartFastPay:
		lookup = req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/v1/payouts") && req.URL.Query().Get("transaction_id") != ""
		create = req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/v1/payout")
	case rail.WEpayout:
		lookup = req.Method == http.MethodGet && req.URL.Query().Get("external_id") != ""
		create = req.Method == http.MethodPost
	}
	return lookup, create
}

func (a *appliedStaleThenRefused) RoundTrip(req *http.Request) (*http.Response, error) {
	lookup, create := singleCall(a.name, req)
	if lookup && a.posts.Load() > 0 && a.stale.Add(1) == 1 {
		if a.name == rail.SmartFastPay {
			return jsonAnswer(req, http.StatusOK, `{"requestId":"stale","data":[]}`), nil
		}
		return jsonAnswer(req, http.StatusOK, `{"data":[],"meta":{"current_page":1,"last_page":1,"per_page":100,"total":0}}`), nil
	}
	if !create {
		return http.DefaultTransport.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	fwd := req.Clone(req.Context())
	fwd.Body, fwd.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	if a.posts.Add(1) == 1 {
		resp, err := http.DefaultTransport.RoundTrip(fwd)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return jsonAnswer(req, http.StatusServiceUnavailable, `{"message":"Service Unavailable"}`), nil
	}
	if bytes.Contains(body, []byte(`"`+a.id+`"`)) && a.sim.Accepted(a.id) > 0 {
		a.refuse.Add(1)
		return jsonAnswer(req, a.status, a.body), nil
	}
	return http.DefaultTransport.RoundTrip(fwd)
}

// busyRefusal is each single-payout rail's refusal of a create for a
// payee whose earlier create is still paying, in words that name no
// duplicate (unpublished: a guess at the worst wording).
var busyRefusal = map[rail.Name]string{
	rail.SmartFastPay: `{"requestId":"busy","moreInformation":"The customer has a payout in progress."}`,
	rail.WEpayout:     `{"message":"The beneficiary has a payment in progress."}`,
}

// checkRefusedRepeatAdopted runs one payee of rail r through
// appliedStaleThenRefused answering the repeat create with status and
// body, and checks that the payee is paid once and never REJECTED.
// crashFirst: a first dispatcher crashes after the first create (untilCrash)
// and a second one takes the batch over.
func checkRefusedRepeatAdopted(t *testing.T, r singleRail, prefix string, status int, body string, crashFirst bool) {
	t.Helper()
	f := newFixture(t, fixtureOpt{})
	b := singleBatch(r, prefix, 1)
	rid := b.Transactions[0].RequestID
	tr := &appliedStaleThenRefused{sim: r.sim, name: r.name, id: rid, status: status, body: body}
	r = r.through(t, tr)
	one := func(c *Config) { c.SingleConcurrency = 1 }
	if crashFirst {
		untilCrash(t, f, r.engine(f, one), b)
		if n := r.sim.Accepted(rid); n != 1 {
			t.Fatalf("before the restart the rail holds %d payouts of %s, want 1", n, rid)
		}
	} else {
		f.produce(f.topics.Batches, b)
	}
	e := r.engine(f, one)
	stop, _ := f.run(e)
	eventually(t, "batch handled", func() bool { return outcome(e, "submitted")+outcome(e, "deferred") >= 1 })
	_ = stop()
	if tr.stale.Load() == 0 || tr.refuse.Load() == 0 {
		t.Fatalf("the faults were not met: %d stale lookups, %d refusals of the repeat", tr.stale.Load(), tr.refuse.Load())
	}
	if rej := byStatus(f.statuses())[rid][payout.StatusRejected]; len(rej) != 0 {
		t.Fatalf("REJECTED %+v for a payee the rail holds a payout of (accepted %d)", rej, r.sim.Accepted(rid))
	}
	f.checkSinglePaid(r, b, nil)
}

// Two faults together on a single-payout rail: a create is applied and
// answered 503, and the lookup after the grace reads a listing behind that
// write, so the payee is posted again; the rail refuses that second create
// as a validation error whose words name no duplicate (the first one is
// still paying). Taken at its word, the payee was REJECTED (final, through
// no gate) while the rail pays it. A refusal of a repeat POST, one after a
// POST of the payee whose outcome was unknown, is taken only once a lookup
// after the grace finds nothing: here it finds the first create, and the
// payee is adopted and paid once.
func TestRefusalOfARepeatPostAfterAStaleLookupIsLookedUp(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		checkRefusedRepeatAdopted(t, r, "refused-repeat", http.StatusUnprocessableEntity, busyRefusal[r.name], false)
	})
}

// The same two faults on WEpayout, whose refusal of the second create
// names the invoice as taken (the 400 client_test.go's TestErrorClasses
// gives): the answer itself proves the payout exists, so it is an unknown
// outcome, and the next lookup adopts the payout.
func TestDuplicateInvoiceRefusalAfterAStaleLookupIsNotARejection(t *testing.T) {
	t.Parallel()
	checkRefusedRepeatAdopted(t, singleRails(t)[1](t), "dup-invoice", http.StatusBadRequest,
		`{"message":"The invoice has already been taken."}`, false)
}

// The same two faults across attempts: the first attempt's create is
// applied and the replica dies before recording anything (a crash, or a
// lease lost, between the answer and the next write). The next attempt
// (the batch may have been posted: maybeSent) waits for that POST to land,
// then reads a listing behind its write and posts the payee again; the
// rail refuses that create for the first one, in words that name no
// duplicate. Its first POST was a repeat as much as one after an unknown
// outcome in the same attempt: taken at its word, the payee was REJECTED
// (final, through no gate) while the rail pays it.
func TestRefusalOfAFirstPostOfAMaybeSentBatchIsLookedUp(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		checkRefusedRepeatAdopted(t, r, "refused-after-crash", http.StatusUnprocessableEntity, busyRefusal[r.name], true)
	})
}
