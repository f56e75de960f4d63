package ingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A claim whose records have no requestId at all (every ids[i] == "")
// clears the copies of the previous claim, which the engine reuses: it
// returned before, so they stayed set. claim's contract is that every
// entry it does not mark is false.
func TestClaimWithoutIDsClearsStaleCopies(t *testing.T) {
	rs := testenv.Redis(t)
	idx := &seenIndex{rdb: rs.Client(), prefix: rs.Prefix(), ttl: time.Hour}
	ctx := context.Background()
	copies := make([]bool, 3)
	// A poll with one original and two copies of it.
	if err := idx.claim(ctx, []string{"r20-a", "r20-a", "r20-a"}, []string{"0:1", "0:2", "0:3"}, copies); err != nil {
		t.Fatal(err)
	}
	if got := fmtBools(copies); got != "011" {
		t.Fatalf("setup: copies = %s, want 011", got)
	}
	// The next poll: records with no requestId to claim (undecodable bytes
	// whose key is no requestId). None of them is a copy of anything.
	if err := idx.claim(ctx, []string{"", "", ""}, []string{"0:4", "0:5", "0:6"}, copies); err != nil {
		t.Fatal(err)
	}
	if got := fmtBools(copies); got != "000" {
		t.Fatalf("records with no requestId marked as copies: copies = %s, want 000 (stale from the previous claim)", got)
	}
}

// Undecodable requests with no usable key (null key; here an unknown
// single-object fingerprint over a valid request, as a producer with a
// new, unregistered schema writes) arrive in a poll of their own after a
// poll that held copies. Marked copies by the last poll's flags, they were
// dead-lettered with error=DUPLICATE_REQUEST: ..., which payoutsctl never
// replays, though they had no original: requests never batched, never
// REJECTED (no key to reject under), and never replayable: lost.
func TestUndecodableAfterCopiesIsNotMarkedACopy(t *testing.T) {
	f := newFixture(t, 1)
	a := request(1, "acc-a", 0)
	f.produce([]payout.Request{a, a, a, a, a}) // one original, four copies
	e := f.engine("ingest-r20-stale", nil)
	stop := f.run(e)
	f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, 4, 60*time.Second)

	// Requests of a schema ingest does not know yet, without a key.
	var junk []*kgo.Record
	for i := range 4 {
		r := request(100+i, "acc-b", 0)
		enc, err := f.codec.AppendRequest(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		v := append([]byte{0xC3, 0x01}, make([]byte, 8)...)
		binary.LittleEndian.PutUint64(v[2:], 0xBADC0FFEE)
		junk = append(junk, &kgo.Record{Value: append(v, enc[10:]...)})
	}
	f.kafka.Produce(t, f.topics.Requests, junk...)
	dlq := f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, 4+len(junk), 60*time.Second)
	stop()
	mislabeled := 0
	for _, r := range dlq {
		if r.Key != nil {
			continue // a's copies
		}
		for _, h := range r.Headers {
			if h.Key == "error" {
				t.Logf("dead letter of %s: error=%q", srcOffset(r), h.Value)
				if strings.HasPrefix(string(h.Value), string(payout.ReasonDuplicateRequest)) {
					mislabeled++
				}
			}
		}
	}
	if mislabeled > 0 {
		t.Fatalf("%d of %d undecodable requests with no requestId were dead-lettered as DUPLICATE_REQUEST copies (payoutsctl refuses to replay them)", mislabeled, len(junk))
	}
}

func srcOffset(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "source-offset" {
			return "offset " + string(h.Value)
		}
	}
	return "?"
}

// The principal lacks DescribeConfigs on the output topics (readLimits
// warns and keeps BATCH_MAX_BYTES), and the batches topic's
// max.message.bytes is below the batches that form. Reading the limits
// again fails the same way, so before learnLimit the cap never changed, the
// same batch was formed and refused, and every window aborted for ever.
// Now each refused batch halves the cap the next session batches under.
func TestTooLargeBatchWithoutDescribeConfigsIsLearned(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	f.limitBatches(6000)
	denyDescribeConfigs(t, f)
	reqs, ids := bulky(200, 0)
	f.produce(reqs)
	e := f.engine("ingest-r20-nodescribe", func(c *Config) { c.MaxTransactions, c.MaxWait, c.MaxWindow = 40, 2*time.Second, 2*time.Second })
	stop := f.run(e)
	deadline := time.Now().Add(45 * time.Second)
	var st []*kgo.Record
	for time.Now().Before(deadline) {
		if st = f.kafka.ReadAll(t, f.topics.Status); len(st) >= len(reqs) {
			break
		}
		time.Sleep(time.Second)
	}
	perr := testutil.ToFloat64(e.m.produceErrors)
	stop()
	if len(st) < len(reqs) {
		t.Fatalf("after 45s %d of %d requests committed; %v windows aborted on a refused record (sessions started: %d): the partition never moves",
			len(st), len(ids), perr, e.sessions)
	}
}

// A REJECTED event repeats the request's unchecked requestId (as its key
// and in its value) and originAccountId, each up to events.MaxStringBytes
// (256 KiB). A request whose requestId is 40 KB (no valid reference:
// REJECTED INVALID_REQUEST_ID) made an 80 KB status record; with the
// status topic's max.message.bytes at 64 KB it was refused on every
// re-read, and the valid request read with it was never batched. Such a
// request is now dead-lettered instead: above MaxRejectedBytes always, and
// above the status topic's limit, whether the brokers describe it or one
// refusal teaches it.
func TestOversizedRejectedEventIsDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     int // the status topic's max.message.bytes
		idLen     int
		described bool
	}{
		{"above MaxRejectedBytes", 64 << 10, 40_000, true},
		{"above the described limit", 4 << 10, 7_000, true},
		{"above a learned limit", 4 << 10, 7_000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []testenv.KafkaOption
			if !tc.described {
				opts = append(opts, testenv.WithKFake()) // kfake denies DescribeConfigs
			}
			f := newFixture(t, 1, opts...)
			f.limitTopic(&f.topics.Status, tc.limit)
			if !tc.described {
				denyDescribeConfigs(t, f)
			}
			good := request(1, "acc-a", 0)
			bad := request(2, "acc-a", 0)
			// Random letters: compression must not shrink the event
			// below the topic's limit.
			rng := rand.New(rand.NewPCG(uint64(tc.idLen), 7))
			id := make([]byte, tc.idLen)
			for i := range id {
				id[i] = byte('a' + rng.IntN(26))
			}
			bad.RequestID = string(id)
			v, err := f.codec.AppendRequest(nil, &bad)
			if err != nil {
				t.Fatal(err)
			}
			f.produce([]payout.Request{good}, &kgo.Record{Key: []byte("req-big"), Value: v})
			e := f.engine("ingest-bigreject", func(c *Config) { c.MaxWait, c.MaxWindow = time.Second, time.Second })
			stop := f.run(e)
			dlq := f.kafka.ReadAtLeast(t, f.topics.RequestsDLQ, 1, 60*time.Second)
			st := f.kafka.ReadAtLeast(t, f.topics.Status, 1, 30*time.Second)
			stop()
			if len(st) != 1 || string(st[0].Key) != good.RequestID {
				t.Fatalf("%d status events, want one, the BATCHED of %s", len(st), good.RequestID)
			}
			if len(dlq) != 1 || string(dlq[0].Key) != "req-big" {
				t.Fatalf("%d dead letters, want the oversized request's", len(dlq))
			}
			for _, h := range dlq[0].Headers {
				if h.Key == "error" && !strings.HasPrefix(string(h.Value), string(payout.ReasonInvalidRequestID)+": ") {
					t.Errorf("dead letter's error %q, want it to start with %s", h.Value, payout.ReasonInvalidRequestID)
				}
			}
		})
	}
}

// denyDescribeConfigs makes kfake refuse every DescribeConfigs, as a
// principal without that permission sees.
func denyDescribeConfigs(t *testing.T, f *fixture) {
	fake := f.kafka.Fake()
	if fake == nil {
		t.Fatal("denyDescribeConfigs needs a fixture on kfake (testenv.WithKFake)")
	}
	fake.ControlKey(int16(kmsg.DescribeConfigs), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kr.(*kmsg.DescribeConfigsRequest)
		resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
		for _, rr := range req.Resources {
			sr := kmsg.NewDescribeConfigsResponseResource()
			sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
			sr.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Resources = append(resp.Resources, sr)
		}
		return resp, nil, true
	})
}

func learnedLimits(e *Engine) map[string]int32 {
	e.learnedMu.Lock()
	defer e.learnedMu.Unlock()
	out := map[string]int32{}
	for k, v := range e.learned {
		out[k] = v
	}
	return out
}

// The status topic's max.message.bytes (4 KiB) is not described (no
// DescribeConfigs) and is below the producer's 1 MB record-batch cap. A
// window's BATCHED events, each about 200 bytes, go out in one record
// batch per partition above 4 KiB: the broker refuses the whole batch, so
// every record of it fails with MESSAGE_TOO_LARGE though each is tiny.
// Learning the limit from the largest record refused (under 512 bytes)
// capped the status topic at 512 bytes and reject's limit at 0: every
// invalid request, whose REJECTED event the topic takes, was dead-lettered
// instead of rejected. The limit is learned from the refused group now.
func TestSmallRecordsRefusedTogetherTeachTheGroupNotTheRecord(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	f.limitTopic(&f.topics.Status, 4<<10)
	denyDescribeConfigs(t, f)
	var reqs []payout.Request
	var valid []string
	for i := range 300 {
		r := request(i, fmt.Sprintf("acc-%d", i%3), 0)
		reqs = append(reqs, r)
		valid = append(valid, r.RequestID)
	}
	bad := request(1000, "acc-a", 0)
	bad.Beneficiary.AccountNumber = "0000000" // INVALID_ACCOUNT_NUMBER: a small REJECTED
	reqs = append(reqs, bad)
	f.produce(reqs)
	e := f.engine("ingest-r21-status", func(c *Config) {
		c.MaxTransactions, c.MaxWait, c.MaxWindow = 1000, 2*time.Second, 2*time.Second
		// The window's events gathered into one record batch: sent as
		// they come on a loaded machine, each batch stayed under the
		// topic's limit and nothing was refused.
		c.Kafka = append(c.Kafka, kgo.ProducerLinger(time.Second))
	})
	stop := f.run(e)

	deadline := time.Now().Add(60 * time.Second)
	var st, dlq []*kgo.Record
	for time.Now().Before(deadline) {
		st = f.kafka.ReadAll(t, f.topics.Status)
		dlq = f.kafka.ReadAll(t, f.topics.RequestsDLQ)
		if len(st)+len(dlq) >= len(reqs) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	stop()
	learned := learnedLimits(e)
	t.Logf("learned limits: %v; status events %d, dead letters %d", learned, len(st), len(dlq))
	if _, ok := learned[f.topics.Status]; !ok {
		t.Fatal("setup: the status topic refused nothing, the test tested nothing")
	}
	var rejected bool
	for _, r := range st {
		var sc payout.StatusChange
		if err := f.codec.DecodeStatusChange(r.Value, &sc); err != nil {
			t.Fatal(err)
		}
		if sc.RequestID == bad.RequestID && sc.Status == payout.StatusRejected {
			rejected = true
		}
	}
	for _, r := range dlq {
		for _, h := range r.Headers {
			if h.Key == "error" {
				t.Logf("dead letter %s: error=%q", r.Key, h.Value)
			}
		}
	}
	if !rejected || len(dlq) != 0 {
		t.Fatalf("invalid %s: REJECTED event emitted=%v, %d dead letters; want its REJECTED (about 300 bytes, the topic takes 4 KiB) and no dead letter: the learned limit %d for %s comes from a 200-byte record refused only because it was batched with others",
			bad.RequestID, rejected, len(dlq), learned[f.topics.Status], f.topics.Status)
	}
}

// The batches topic's max.message.bytes (16 KiB) is not described and is
// above what batches need (BATCH_MAX_BYTES 4 KiB here). A window closes many
// small batches (one per origin account, about 1 KB each); the producer puts
// a partition's batch records in one record batch up to its 1 MB cap, above
// 16 KiB, and the broker refuses it: every batch record in it fails with
// MESSAGE_TOO_LARGE though each is 1 KB. Learned from the largest record,
// the limit fell below the smallest batch and readLimits stopped the
// worker ("too small for batches: raise it") though the topic takes every
// batch this worker forms.
func TestSmallBatchesRefusedTogetherDoNotStopTheWorker(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	f.limitBatches(16 << 10)
	denyDescribeConfigs(t, f)
	var reqs []payout.Request
	for a := range 150 {
		rs, _ := bulky(3, 3*a)
		for i := range rs {
			rs[i].OriginAccountID = fmt.Sprintf("acc-%03d", a)
		}
		reqs = append(reqs, rs...)
	}
	f.produce(reqs)
	e := f.engine("ingest-r21-batches", func(c *Config) {
		c.MaxTransactions, c.MaxBatchBytes, c.MaxWait, c.MaxWindow = 1000, MinBatchBytes, 2*time.Second, 2*time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.After(60 * time.Second)
	var st []*kgo.Record
	for {
		select {
		case err := <-done:
			st = f.kafka.ReadAll(t, f.topics.Status)
			t.Fatalf("the worker stopped with %v after %d of %d requests committed; learned limits %v (the topic takes 16 KiB, batches are capped at %d)",
				err, len(st), len(reqs), learnedLimits(e), MinBatchBytes)
		case <-deadline:
			cancel()
			<-done
			t.Fatalf("after 60s %d of %d requests committed; learned %v", len(st), len(reqs), learnedLimits(e))
		case <-time.After(time.Second):
		}
		if st = f.kafka.ReadAll(t, f.topics.Status); len(st) >= len(reqs) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("engine: %v", err)
	}
	t.Logf("all %d committed; learned limits %v", len(st), learnedLimits(e))
}

// A batches topic below the smallest batch ingest forms (MinBatchBytes plus
// the record's framing), not described: the learned limit falls to that
// floor, a batch is refused there too, and the worker stops with the error
// that names the topic, rather than refusing the same batch for ever.
func TestBatchesTopicBelowTheSmallestBatchStopsTheWorker(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake())
	f.limitBatches(1500)
	denyDescribeConfigs(t, f)
	reqs, _ := bulky(200, 0)
	f.produce(reqs)
	e := f.engine("ingest-below-floor", func(c *Config) { c.MaxWait, c.MaxWindow = time.Second, time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := e.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the worker kept running for 90s (learned %v)", learnedLimits(e))
	}
	if err == nil || !strings.Contains(err.Error(), f.topics.Batches) || !strings.Contains(err.Error(), "raise it") {
		t.Fatalf("the worker stopped with %v, want the error naming %s and saying to raise it", err, f.topics.Batches)
	}
	if st := f.kafka.ReadAll(t, f.topics.Status); len(st) != 0 {
		t.Fatalf("%d status events committed, want none: no batch fits", len(st))
	}
}
