package ingest

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A request republished inside one window is dead-lettered with
// error=DUPLICATE_REQUEST, never batched or given a second status event:
// the status topic holds one lifecycle per requestId (issue #16). A valid
// copy after an invalid one is no exception.
func TestCopiesInsideOneWindowAreDeadLettered(t *testing.T) {
	f := newFixture(t, 1)
	a, b := request(1, "acc-a", 0), request(2, "acc-a", 0)
	bad := request(3, "acc-a", 0)
	bad.Beneficiary.AccountNumber = "0000000"
	fixed := bad
	fixed.Beneficiary.AccountNumber = request(4, "acc-a", 0).Beneficiary.AccountNumber
	f.produce([]payout.Request{a, b, a, bad, fixed, a})
	e := f.engine("ingest-copies", nil)
	stop := f.run(e)
	o := f.read(3)
	stop()
	o.assertExactlyOnce(t, []string{a.RequestID, b.RequestID}, []string{bad.RequestID})
	if err := payout.CheckLifecycles(append(append(o.statuses[a.RequestID], o.statuses[b.RequestID]...), o.statuses[bad.RequestID]...)); err != nil {
		t.Fatal(err)
	}
	var copies []string
	for _, r := range o.dlq {
		for _, h := range r.Headers {
			if h.Key == "error" && string(h.Value) == string(payout.ReasonDuplicateRequest) {
				copies = append(copies, string(r.Key))
			}
		}
	}
	if len(copies) != 3 || len(o.dlq) != 3 {
		t.Fatalf("DLQ copies %v of %d DLQ records, want the two copies of a and the fixed copy of the rejected request", copies, len(o.dlq))
	}
}

// Copies in different windows each get a BATCHED, but with the same
// eventId (it does not name the batch): after dedupe by eventId a consumer
// sees one BATCHED, and the dispatcher pays one copy only.
func TestBatchedEventIDIsTheRequests(t *testing.T) {
	f := newFixture(t, 1)
	a := request(1, "acc-a", 0)
	f.produce([]payout.Request{a})
	e := f.engine("ingest-batched-id", nil)
	stop := f.run(e)
	f.read(1)
	f.produce([]payout.Request{a})
	o := f.read(2)
	stop()
	st := o.statuses[a.RequestID]
	if len(st) != 2 || st[0].EventID != st[1].EventID || st[0].EventID != payout.EventID("status", a.RequestID, string(payout.StatusBatched)) {
		t.Fatalf("BATCHED events of a copy in another window: %+v, want one eventId", st)
	}
	if err := payout.CheckLifecycles(st); err != nil {
		t.Fatal(err)
	}
}
