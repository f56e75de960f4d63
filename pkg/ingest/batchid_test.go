package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

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

// A batch id names every request of the batch, not only the first. After
// the requests topic is re-created, a request o republished at its old
// position starts a batch [o, n] at the same position as the finished batch
// [o, a]; with fixed-fee amounts the count and total match too, and the id
// hashed only o: [o, n] got [o, a]'s id, the dispatcher skipped it as
// already handled, and n was lost after BATCHED. A batch of the very same
// requests still gets the same id.
func TestBatchIDNamesEveryRequest(t *testing.T) {
	seal := func(requestNs ...int) string {
		a := newAggregator("payouts.requests.v1", 5000, 1<<60, DefaultMaxBatchBytes)
		for i, n := range requestNs {
			r := request(n, "acc-a", 0)
			r.Rail = railName("wompi")
			r.AmountInCents = 100_001
			a.add(&r, 0, int64(i), 100)
		}
		return a.seal(a.drain()[0], testNow).BatchID
	}
	if oa, on := seal(1, 2), seal(1, 3); oa == on {
		t.Fatalf("batches [o, a] and [o, n] at the same positions share the id %s", oa)
	}
	if x, y := seal(1, 2, 3), seal(1, 3, 2); x == y {
		t.Fatalf("the same requests in another order share the id %s", x)
	}
	if x, y := seal(1, 2, 3), seal(1, 2, 3); x != y {
		t.Fatalf("the same batch sealed twice: %s and %s", x, y)
	}
	// The kept buffer must not carry one batch's ids into the next.
	a := newAggregator("payouts.requests.v1", 2, 1<<60, DefaultMaxBatchBytes)
	var ids []string
	for i, n := range []int{1, 2, 1, 3} {
		r := request(n, "acc-a", 0)
		r.Rail = railName("wompi")
		r.AmountInCents = 100_001
		if closed, _, _ := a.add(&r, 0, int64(i%2), 100); closed != nil {
			ids = append(ids, a.seal(closed, testNow).BatchID)
			a.recycle(closed)
		}
	}
	if want := []string{seal(1, 2), seal(1, 3)}; len(ids) != 2 || ids[0] != want[0] || ids[1] != want[1] {
		t.Fatalf("batches sealed one after the other: %v, want %v", ids, want)
	}
}

// The whole path on a re-created topic: ingest batches o and a into [o, a];
// the requests topic is deleted and created again; the marketplace
// republishes o (it lands at o's old position) and sends n, of a's amount.
// The batch holding n must not carry the id of the finished batch of a, or
// the dispatcher skips it and n is never paid. And o's copy is a copy: the
// seen index named a claim's record by "partition:offset" only, so o's
// copy at its old position was taken for o read again and batched a
// second time, with a second BATCHED.
func TestBatchAfterTheTopicIsRecreatedGetsANewID(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	// INGEST_SEEN_TIMESTAMPS on: o's claim must name o's timestamp for its
	// copy at the same position to be told from it (a claim without one
	// names whatever record stands at its position).
	window := func(c *Config) {
		c.MaxWait, c.MaxWindow = 2*time.Second, 2*time.Second
		c.SeenTimestamps = true
	}
	o, a := request(1, "acc-a", 0), request(2, "acc-a", 0)
	f.produce([]payout.Request{o, a})
	stop1 := f.run(f.engine("ingest-recreated-1", window))
	f.read(2)
	stop1()

	ctx := context.Background()
	if _, err := f.kafka.Admin(t).DeleteTopics(ctx, f.topics.Requests); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	f.kafka.CreateTopic(t, f.topics.Requests, 1)
	n := request(3, "acc-a", 0)
	n.AmountInCents = a.AmountInCents
	f.produce([]payout.Request{o, n})
	e2 := f.engine("ingest-recreated-2", window)
	stop2 := f.run(e2)
	for deadline := time.Now().Add(60 * time.Second); e2.Committed() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second engine committed %d requests, want 2", e2.Committed())
		}
	}
	f.kafka.Settle(t, 30*time.Second, f.topics.Status, f.topics.Batches, f.topics.RequestsDLQ)
	out := f.read(3)
	stop2()

	if len(out.batchOf[a.RequestID]) != 1 || len(out.batchOf[n.RequestID]) != 1 {
		t.Fatalf("a in batches %v, n in %v: want one each", out.batchOf[a.RequestID], out.batchOf[n.RequestID])
	}
	if ida, idn := out.batchOf[a.RequestID][0], out.batchOf[n.RequestID][0]; ida == idn {
		t.Fatalf("n is in batch %s, the id of a's finished batch: the dispatcher skips it", idn)
	}
	// o's copy, at o's old position, is a copy (the seen index's claim
	// names the record's timestamp too), not o read again.
	if got := out.batchOf[o.RequestID]; len(got) != 1 {
		t.Errorf("o is in %d committed batches %v: its copy at its old position was taken for its own claim", len(got), got)
	}
	if st := out.statuses[o.RequestID]; len(st) != 1 {
		t.Errorf("o has %d status events, want one BATCHED: %+v", len(st), st)
	}
	if errs := dlqErrors(out.dlq); len(errs[o.RequestID]) != 1 || errs[o.RequestID][0] != string(payout.ReasonDuplicateRequest) {
		t.Errorf("DLQ = %v, want o's copy as DUPLICATE_REQUEST", errs)
	}
}
