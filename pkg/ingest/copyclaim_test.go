package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Pair: a copy that is also invalid, or that carries another amount (a
// republished request "corrected" under the same requestId), in a later
// window and in its original's window. The copy check comes before routing
// and validation (process: isCopy), so an invalid copy never adds a
// REJECTED after its original's BATCHED (a final status after a non-final
// one the request never reaches), and an altered copy never forms a second
// batch nor changes the amount the marketplace was told. Every copy is in
// the DLQ as DUPLICATE_REQUEST.
func TestInvalidOrAlteredCopyOfABatchedRequestIsDeadLettered(t *testing.T) {
	f := newFixture(t, 2)
	a, b := request(1, "acc-a", 0), request(2, "acc-a", 0)
	invalidCopy := func(r payout.Request) payout.Request {
		r.Beneficiary.AccountNumber = "0000000" // INVALID_ACCOUNT_NUMBER if validated
		return r
	}
	alteredCopy := func(r payout.Request) payout.Request {
		r.AmountInCents += 50_000
		return r
	}
	rekeyed := func(r payout.Request) *kgo.Record {
		v, err := f.codec.AppendRequest(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Key: []byte("copy-" + r.RequestID), Value: v}
	}
	f.produce([]payout.Request{a})
	e := f.engine("ingest-altered-copies", nil)
	stop := f.run(e)
	f.read(1) // a's window committed

	// Later windows: a's copies (one on its partition, one re-keyed); b and
	// its copies after it on b's partition (same key: b is read first).
	f.produce([]payout.Request{invalidCopy(a), b, invalidCopy(b), alteredCopy(b)}, rekeyed(alteredCopy(a)))
	// Every record of the second round ends somewhere: 4 copies in the
	// DLQ and b's BATCHED (a copy handled as a request ends on the status
	// topic instead, and the assertions below say how).
	f.awaitEnded(1+5, 60*time.Second)
	o := f.read(2)
	stop()

	o.assertExactlyOnce(t, []string{a.RequestID, b.RequestID}, nil)
	if err := payout.CheckLifecycles(o.allStatuses()); err != nil {
		t.Fatal(err)
	}
	for _, r := range []payout.Request{a, b} {
		st := o.statuses[r.RequestID]
		if len(st) != 1 || st[0].AmountInCents != r.AmountInCents {
			t.Errorf("%s: statuses %+v, want one BATCHED of the original's amount %d", r.RequestID, st, r.AmountInCents)
		}
		for _, id := range o.batchOf[r.RequestID] {
			for _, tx := range o.batches[id].Transactions {
				if tx.RequestID == r.RequestID && tx.AmountInCents != r.AmountInCents {
					t.Errorf("%s batched for %d, want the original's %d", r.RequestID, tx.AmountInCents, r.AmountInCents)
				}
			}
		}
	}
	if len(o.dlq) != 4 {
		t.Fatalf("DLQ holds %d records, want the 4 copies: %v", len(o.dlq), dlqErrors(o.dlq))
	}
	for key, errs := range dlqErrors(o.dlq) {
		for _, e := range errs {
			if e != string(payout.ReasonDuplicateRequest) {
				t.Errorf("DLQ record %s has error %q, want %s", key, e, payout.ReasonDuplicateRequest)
			}
		}
	}
}

// Pair: a window's claim is written, then expires (DEDUPE_WINDOW's TTL, or
// an eviction) before the window commits, and the window aborts; a copy of
// the request with another amount, under another key, is published
// meanwhile. Read again, the original and the copy race for the free key:
// whichever claims first is batched, the other is a copy. The requestId
// ends in one batch with one BATCHED, whose amount is the batched one, and
// the other record is in the DLQ (SET NX GET, and ownClaim for the record
// read again).
func TestClaimExpiredBeforeTheAbortEndsTheRequestOnce(t *testing.T) {
	f := newFixture(t, 2)
	orig := request(7, "acc-a", 0)
	other := orig
	other.AmountInCents += 1_000
	v, err := f.codec.AppendRequest(nil, &other)
	if err != nil {
		t.Fatal(err)
	}
	f.produce([]payout.Request{orig})
	e := f.engine("ingest-expired-claim", nil)
	var n atomic.Int32
	e.afterClaim = func() error {
		if n.Add(1) > 1 {
			return nil
		}
		ctx := context.Background()
		if got, err := e.cfg.Redis.Get(ctx, e.index.key(orig.RequestID)).Result(); err != nil || got == "" {
			return errors.New("test: the original's claim is missing")
		}
		if err := e.cfg.Redis.Del(ctx, e.index.key(orig.RequestID)).Err(); err != nil {
			return err
		}
		f.kafka.Produce(t, f.topics.Requests, &kgo.Record{Key: []byte("copy-" + orig.RequestID), Value: v})
		return errors.New("test: the claim expired, then the window aborts")
	}
	stop := f.run(e)
	f.awaitEnded(2, 60*time.Second)
	o := f.read(1)
	stop()
	if n.Load() < 2 {
		t.Fatal("the window was not read again: the test tested nothing")
	}
	o.assertExactlyOnce(t, []string{orig.RequestID}, nil)
	st := o.statuses[orig.RequestID][0]
	var batched int64 = -1
	for _, tx := range o.batches[o.batchOf[orig.RequestID][0]].Transactions {
		if tx.RequestID == orig.RequestID {
			batched = tx.AmountInCents
		}
	}
	if st.AmountInCents != batched || (batched != orig.AmountInCents && batched != other.AmountInCents) {
		t.Fatalf("BATCHED says %d, the batch holds %d; want one of the two records' amounts, the same in both", st.AmountInCents, batched)
	}
	errs := dlqErrors(o.dlq)
	if len(o.dlq) != 1 {
		t.Fatalf("DLQ holds %v, want the record that lost the race as DUPLICATE_REQUEST", errs)
	}
	for key, es := range errs {
		if len(es) != 1 || es[0] != string(payout.ReasonDuplicateRequest) {
			t.Fatalf("DLQ record %s has errors %q, want %s", key, es, payout.ReasonDuplicateRequest)
		}
	}
}

// awaitEnded waits until the status and DLQ topics together hold n
// committed records, and then for every pending transaction to settle.
func (f *fixture) awaitEnded(n int, timeout time.Duration) {
	f.t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		got := len(f.kafka.ReadAll(f.t, f.topics.Status)) + len(f.kafka.ReadAll(f.t, f.topics.RequestsDLQ))
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("after %v the status and DLQ topics hold %d records, want %d", timeout, got, n)
		}
	}
	f.kafka.Settle(f.t, 30*time.Second, f.topics.Status, f.topics.Batches, f.topics.RequestsDLQ)
}
