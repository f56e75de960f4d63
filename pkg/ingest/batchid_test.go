package ingest

import "testing"

// A batch id names its first request. It hashed the group key, the topic's
// name, the first request's position, the count and the total only: when the
// requests topic's positions start again from 0 (the topic re-created, the
// pipeline moved to another Kafka cluster) while Redis keeps the
// dispatcher's records of finished batches, a batch of other requests at
// the same position, with the same account and amount, got the id of a
// finished one, and the dispatcher skipped it as already handled: its
// requests were lost after BATCHED. The same inputs still give the same id.
func TestBatchIDNamesItsFirstRequest(t *testing.T) {
	seal := func(requestN int) string {
		r := request(requestN, "acc-a", 0)
		r.Rail = railName("wompi")
		r.AmountInCents = 100_001 // fixed-fee payouts: every request the same amount
		a := newAggregator("payouts.requests.v1", 5000, 1<<60, DefaultMaxBatchBytes)
		a.add(&r, 3, 0, 100)
		return a.seal(a.drain()[0], testNow).BatchID
	}
	if a, b := seal(1), seal(777); a == b {
		t.Fatalf("two batches of different requests at the same position share the id %s", a)
	}
	if a, b := seal(1), seal(1); a != b {
		t.Fatalf("the same batch sealed twice: %s and %s", a, b)
	}
}
