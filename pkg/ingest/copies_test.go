package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

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

// dlqErrors maps each DLQ record's key to its error header.
func dlqErrors(recs []*kgo.Record) map[string][]string {
	out := map[string][]string{}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == "error" {
				out[string(r.Key)] = append(out[string(r.Key)], string(h.Value))
			}
		}
	}
	return out
}

func duplicates(e *Engine) float64 {
	return testutil.ToFloat64(e.m.duplicates.WithLabelValues("ingest"))
}

// allStatuses returns every status event read, for CheckLifecycles.
func (o outcome) allStatuses() []payout.StatusChange {
	var all []payout.StatusChange
	for _, st := range o.statuses {
		all = append(all, st...)
	}
	return all
}

// A copy republished after its original's window committed (issue #16 gap
// a): the seen index in Redis remembers the requestId, so the copy goes to
// the DLQ with error=DUPLICATE_REQUEST and counts in
// payouts_duplicate_requests_total{stage="ingest"}; the status topic keeps
// one BATCHED and the batches topic one batch.
func TestCopyInALaterWindowIsDeadLettered(t *testing.T) {
	f := newFixture(t, 1)
	a, b := request(1, "acc-a", 0), request(2, "acc-a", 0)
	f.produce([]payout.Request{a})
	e := f.engine("ingest-later-copy", nil)
	stop := f.run(e)
	f.read(1) // a's window committed
	f.produce([]payout.Request{a, b})
	f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, 1, 60*time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status) // the copies' window, on every topic
	o := f.read(2)
	stop()
	o.assertExactlyOnce(t, []string{a.RequestID, b.RequestID}, nil)
	if err := payout.CheckLifecycles(o.allStatuses()); err != nil {
		t.Fatal(err)
	}
	if errs := dlqErrors(o.dlq); len(o.dlq) != 1 || len(errs[a.RequestID]) != 1 || errs[a.RequestID][0] != string(payout.ReasonDuplicateRequest) {
		t.Fatalf("DLQ = %v (%d records), want a's copy with error=DUPLICATE_REQUEST", errs, len(o.dlq))
	}
	if n := duplicates(e); n != 1 {
		t.Fatalf("payouts_duplicate_requests_total{stage=ingest} = %v, want 1", n)
	}
}

// A requestId that ended REJECTED is consumed (issue #16 gap b): a valid
// copy republished in a later window is dead-lettered, never batched, so
// the status topic holds the REJECTED alone. The same holds when the first
// record was undecodable (REJECTED UNDECODABLE under its key); and an
// undecodable copy of a batched request goes to the DLQ without a REJECTED
// after the BATCHED.
func TestValidCopyOfARejectedRequestIsDeadLettered(t *testing.T) {
	f := newFixture(t, 1)
	bad := request(1, "acc-a", 0)
	bad.Beneficiary.AccountNumber = "0000000"
	fixed := request(1, "acc-a", 0)
	garbled := request(2, "acc-a", 0)
	paid := request(3, "acc-a", 0)
	garbage := func(id string) *kgo.Record { return &kgo.Record{Key: []byte(id), Value: []byte("not avro at all")} }
	f.produce([]payout.Request{bad, paid}, garbage(garbled.RequestID))
	e := f.engine("ingest-rejected-copy", nil)
	stop := f.run(e)
	f.read(3) // REJECTED, BATCHED, REJECTED UNDECODABLE: committed
	f.produce([]payout.Request{fixed, garbled}, garbage(paid.RequestID))
	f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, 4, 60*time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status) // the copies' window, on every topic
	o := f.read(3)
	stop()
	o.assertExactlyOnce(t, []string{paid.RequestID}, []string{bad.RequestID, garbled.RequestID})
	if err := payout.CheckLifecycles(o.allStatuses()); err != nil {
		t.Fatal(err)
	}
	errs := dlqErrors(o.dlq)
	dup := string(payout.ReasonDuplicateRequest)
	if len(o.dlq) != 4 || len(errs[bad.RequestID]) != 1 || errs[bad.RequestID][0] != dup ||
		len(errs[garbled.RequestID]) != 2 || errs[garbled.RequestID][1] != dup ||
		len(errs[paid.RequestID]) != 1 || !strings.HasPrefix(errs[paid.RequestID][0], dup+": ") ||
		len(errs[garbled.RequestID][0]) == 0 || strings.HasPrefix(errs[garbled.RequestID][0], dup) {
		t.Fatalf("DLQ = %v, want: the fixed copy and the decodable copy of the garbled request as DUPLICATE_REQUEST, the first garbage record with its decode error, and the garbage copy of the paid request as DUPLICATE_REQUEST with its decode error", errs)
	}
	if n := duplicates(e); n != 2 {
		t.Fatalf("payouts_duplicate_requests_total{stage=ingest} = %v, want 2", n)
	}
}

// A window aborted after its claims reached Redis (a crash between the
// Redis write and the commit) is read again: each record finds its
// requestId held by itself (same partition and offset), so it is batched
// once, and nothing goes to the DLQ.
func TestWindowReadAgainAfterItsClaimsIsNotACopy(t *testing.T) {
	f := newFixture(t, 2)
	reqs, valid, invalid := mixed(120, 0)
	f.produce(reqs)
	var claims atomic.Int32
	e := f.engine("ingest-reread", nil)
	e.afterClaim = func() error {
		if claims.Add(1) <= 3 {
			return errors.New("crash after the claims (test)")
		}
		return nil
	}
	stop := f.run(e)
	o := f.read(len(reqs))
	stop()
	if claims.Load() <= 3 {
		t.Fatalf("only %d claims: the aborts did not happen", claims.Load())
	}
	if got := testutil.ToFloat64(e.m.txns.WithLabelValues("aborted")); got < 1 {
		t.Fatalf("no window was aborted (aborted transactions %v)", got)
	}
	o.assertExactlyOnce(t, valid, invalid)
	if len(o.dlq) != 0 || duplicates(e) != 0 {
		t.Fatalf("records read again were taken for copies: DLQ %v, duplicates %v", dlqErrors(o.dlq), duplicates(e))
	}
}

// Two replicas share the seen index. A rebalance between the originals and
// their copies moves partitions to the second replica, which has never
// seen the originals; and copies under another key (another partition,
// possibly the other replica) race their originals in open windows. Every
// requestId ends with one batch and one BATCHED; every copy is in the DLQ.
func TestCopiesAcrossReplicasAndARebalance(t *testing.T) {
	f := newFixture(t, 4)
	var originals []payout.Request
	for i := range 40 {
		originals = append(originals, request(i, []string{"acc-a", "acc-b"}[i%2], 0))
	}
	// Another key: the copy lands on another partition than its original.
	rekeyed := func(reqs []payout.Request) []*kgo.Record {
		var recs []*kgo.Record
		for i := range reqs {
			v, err := f.codec.AppendRequest(nil, &reqs[i])
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Key: []byte("copy-" + reqs[i].RequestID), Value: v})
		}
		return recs
	}
	f.produce(originals)
	a := f.engine("ingest-replica-a", nil)
	stopA := f.run(a)
	f.read(len(originals))

	b := f.engine("ingest-replica-b", nil) // joins: the group rebalances
	stopB := f.run(b)
	deadline := time.Now().Add(60 * time.Second)
	for (b.assigned() == 0 || !b.Ready() || a.assigned()+b.assigned() != 4) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if b.assigned() == 0 {
		t.Fatal("the second replica never got a partition")
	}
	// Copies of every original, under the same key (the same partitions,
	// now split between the replicas) and under another key.
	f.produce(originals, rekeyed(originals)...)
	// New requests and their re-keyed copies at once, while both run.
	var racing []payout.Request
	for i := 100; i < 140; i++ {
		racing = append(racing, request(i, "acc-c", 0))
	}
	f.produce(racing, rekeyed(racing)...)
	f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, 2*len(originals)+len(racing), 90*time.Second)
	f.kafka.Settle(t, 30*time.Second, f.topics.Status) // the copies' window, on every topic
	o := f.read(len(originals) + len(racing))
	stopA()
	stopB()

	var ids []string
	for _, r := range append(originals, racing...) {
		ids = append(ids, r.RequestID)
	}
	o.assertExactlyOnce(t, ids, nil)
	if err := payout.CheckLifecycles(o.allStatuses()); err != nil {
		t.Fatal(err)
	}
	if want := 2*len(originals) + len(racing); len(o.dlq) != want {
		t.Fatalf("DLQ holds %d records, want %d copies", len(o.dlq), want)
	}
	for key, errs := range dlqErrors(o.dlq) {
		for _, e := range errs {
			if e != string(payout.ReasonDuplicateRequest) {
				t.Fatalf("DLQ record %s has error %q", key, e)
			}
		}
	}
	if da, db := duplicates(a), duplicates(b); da+db != float64(len(o.dlq)) || db == 0 {
		t.Fatalf("duplicates counted: replica a %v, replica b %v; want %d in all, some by b (copies of a's originals)", da, db, len(o.dlq))
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// While Redis cannot be reached, ingest batches and rejects nothing (it
// never skips the check): each window aborts with one clear error line,
// payouts_ingest_seen_index_errors_total counts it, and the window is read
// again after a backoff. Once Redis answers, every request is handled
// exactly once.
func TestSeenIndexDownBlocksEverything(t *testing.T) {
	f := newFixture(t, 2)
	reqs, valid, invalid := mixed(60, 0)
	f.produce(reqs)
	var down atomic.Bool
	down.Store(true)
	rdb := redis.NewClient(&redis.Options{
		Addr: f.redis.Addr(),
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if down.Load() {
				return nil, errors.New("connection refused (test: Redis down)")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		MaxRetries: -1,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	var logs syncBuffer
	e := f.engine("ingest-redis-down", func(c *Config) {
		c.Redis = rdb
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	stop := f.run(e)
	deadline := time.Now().Add(60 * time.Second)
	for testutil.ToFloat64(e.m.seenErrors) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := testutil.ToFloat64(e.m.seenErrors); n < 2 {
		t.Fatalf("payouts_ingest_seen_index_errors_total = %v after 60s, want windows aborted for the seen index", n)
	}
	if st := f.kafka.ReadAll(t, f.topics.Status); len(st) != 0 {
		t.Fatalf("%d status events committed while the seen index was down", len(st))
	}
	if bs := f.kafka.ReadAll(t, f.topics.Batches); len(bs) != 0 {
		t.Fatalf("%d batches committed while the seen index was down", len(bs))
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "seen index in Redis (REDIS_URL)") || !strings.Contains(l, "nothing is batched") {
		t.Fatalf("no clear error line in the log:\n%s", l)
	}
	down.Store(false)
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, valid, invalid)
}
